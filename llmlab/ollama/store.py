"""The models an Ollama-compatible server knows: one small JSON manifest per name.

Ollama keeps each model as a manifest that points at content-addressed blobs (the GGUF weights,
the system prompt, the parameters). This store keeps the same facts in one JSON file per name,
pointing at the GGUF file where it already lies (or at a blob uploaded through ``/api/blobs``).
What Ollama lists about the weights (size, family, quantization) is recorded when the model is
made, so the list still answers when a file has since moved (a new clone, a rebuilt virtual
environment); only using such a model fails, with a message that says which file is gone.
A model made ``FROM`` another one inherits its weights, system prompt, template, parameters and
messages, and a copy is a new name for the same manifest: nothing is duplicated but a few bytes.
Names are normalized as Ollama does (``assistant`` is ``assistant:latest``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gguf import LlamaFileType

from llmlab.errors import LLMLabError, ModelNotFoundError
from llmlab.llamacpp.gguf import read_gguf
from llmlab.ollama.modelfile import Modelfile
from llmlab.settings import cache_dir

_NAME = re.compile(
    r"^[A-Za-z0-9][\w.-]{0,79}(/[A-Za-z0-9][\w.-]{0,79}){0,2}(:[A-Za-z0-9_][\w.-]{0,127})?$"
)
_DIGEST = re.compile(r"^sha256[:-]([0-9a-f]{64})$")
_SUMMARIZED_ARRAY = re.compile(r"^\[\d+ items\]$")


class ModelNotInStoreError(LLMLabError, LookupError):
    """No model by that name; the message is Ollama's own."""

    def __init__(self, name: str) -> None:
        super().__init__(f'model "{name}" not found, try pulling it first')


class StoreError(LLMLabError, ValueError):
    """A name Ollama would refuse too, or an upload that does not match its digest."""


@dataclass(frozen=True)
class StoredModel:
    """One model: its GGUF file, what its Modelfile set, and what Ollama reports about it."""

    name: str
    gguf: str
    parent: str  # what FROM named: a GGUF path or another model
    system: str | None = None
    template: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, str]] = field(default_factory=list)
    license: list[str] = field(default_factory=list)
    modified_at: str = ""
    size: int = 0  # of the GGUF file, when the model was made
    gguf_details: dict[str, Any] = field(default_factory=dict)  # likewise

    @property
    def digest(self) -> str:
        """Ollama's digest: the same for a copy, different once anything in the recipe changes."""
        recipe = asdict(self) | {"name": None, "modified_at": None}
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()

    @property
    def details(self) -> dict[str, Any]:
        parent = "" if self.from_gguf else self.parent
        return {"format": "gguf"} | self.gguf_details | {"parent_model": parent}

    def require_file(self) -> None:
        """Before serving: a GGUF file that is gone is named, with what to do about it."""
        _file_key(self.gguf)

    @property
    def from_gguf(self) -> bool:
        return Path(self.parent) == Path(self.gguf)

    def modelfile(self) -> Modelfile:
        """The Modelfile that makes this model again."""
        return Modelfile(
            from_=self.gguf,
            system=self.system,
            template=self.template,
            parameters=dict(self.parameters),
            messages=list(self.messages),
            license=list(self.license),
        )


class ModelStore:
    """Manifests under ``root`` (default: the course cache's ``ollama`` folder)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root else cache_dir() / "ollama"
        self.manifests = self.root / "manifests"
        self.blobs = self.root / "blobs"
        self.manifests.mkdir(parents=True, exist_ok=True)
        self.blobs.mkdir(parents=True, exist_ok=True)

    def create(self, name: str, modelfile: Modelfile) -> StoredModel:
        """Make ``name`` from a Modelfile; FROM another model starts from everything it has."""
        name = normalize_name(name)
        if modelfile.from_gguf:
            base = _with_file_facts(
                StoredModel(name=name, gguf=modelfile.from_, parent=modelfile.from_)
            )  # fails here, not later, if the file is not a GGUF
        else:
            base = self.get(modelfile.from_)
        model = replace(
            base,
            name=name,
            system=base.system if modelfile.system is None else modelfile.system,
            template=base.template if modelfile.template is None else modelfile.template,
            parameters=base.parameters | modelfile.parameters,
            messages=modelfile.messages or base.messages,
            license=base.license + modelfile.license,
            parent=modelfile.from_ if modelfile.from_gguf else base.name,
        )
        return self._write(model)

    def get(self, name: str) -> StoredModel:
        path = self._path(normalize_name(name))
        if not path.is_file():
            raise ModelNotInStoreError(name)
        return _read_manifest(path)

    def list(self) -> list[StoredModel]:
        """Every model, the most recently changed first (as ``ollama list`` shows them)."""
        models = [_read_manifest(path) for path in self.manifests.glob("*.json")]
        return sorted(models, key=lambda model: model.modified_at, reverse=True)

    def copy(self, source: str, destination: str) -> StoredModel:
        return self._write(replace(self.get(source), name=normalize_name(destination)))

    def delete(self, name: str) -> None:
        """Forget ``name``; an uploaded blob no other model uses goes too."""
        model = self.get(name)
        self._path(model.name).unlink()
        blob = Path(model.gguf)
        if blob.parent == self.blobs and all(other.gguf != model.gguf for other in self.list()):
            blob.unlink(missing_ok=True)

    def blob_path(self, digest: str) -> Path:
        """Where the blob ``sha256:<hex>`` lies (whether or not it is there yet)."""
        match = _DIGEST.match(digest)
        if not match:
            raise StoreError(f"{digest!r} is not a digest like sha256:<64 hex digits>")
        return self.blobs / f"sha256-{match.group(1)}"

    async def add_blob(self, digest: str, chunks: AsyncIterable[bytes]) -> Path:
        """Store uploaded bytes under their digest, after checking that they match it."""
        path = self.blob_path(digest)
        partial = path.with_suffix(".partial")
        hasher = hashlib.sha256()
        with partial.open("wb") as out:
            async for chunk in chunks:
                hasher.update(chunk)
                out.write(chunk)
        if f"sha256-{hasher.hexdigest()}" != path.name:
            partial.unlink()
            raise StoreError(f"the uploaded bytes do not match the digest {digest}")
        partial.rename(path)
        return path

    def _write(self, model: StoredModel) -> StoredModel:
        model = replace(model, modified_at=datetime.now().astimezone().isoformat())
        self._path(model.name).write_text(json.dumps(asdict(model), indent=1))
        return model

    def _path(self, name: str) -> Path:
        return self.manifests / f"{quote(name, safe='')}.json"


def _read_manifest(path: Path) -> StoredModel:
    model = StoredModel(**json.loads(path.read_text()))
    if model.gguf_details or not Path(model.gguf).is_file():
        return model
    return _with_file_facts(model)  # written before the facts were recorded


def _with_file_facts(model: StoredModel) -> StoredModel:
    size = _file_key(model.gguf)[2]
    return replace(model, size=size, gguf_details=gguf_details(model.gguf))


def normalize_name(name: str) -> str:
    """``name:latest`` for a name without a tag; ``StoreError`` for one Ollama refuses."""
    name = name.strip()
    if not _NAME.match(name):
        raise StoreError(
            f"invalid model name {name!r}: use letters, digits, '_', '-' and '.', an optional "
            f"namespace before '/' and an optional tag after ':' (like my-assistant:v1)"
        )
    return name if ":" in name else f"{name}:latest"


def gguf_details(path: str | Path) -> dict[str, Any]:
    """``details`` as Ollama reports them: format, family, parameter size, quantization."""
    metadata, parameters = _gguf_facts(*_file_key(path))
    family = str(metadata.get("general.architecture", "unknown"))
    file_type = metadata.get("general.file_type")
    quantization = LlamaFileType(file_type).name.removeprefix("MOSTLY_") if file_type else "F32"
    return {
        "format": "gguf",
        "family": family,
        "families": [family],
        "parameter_size": human_count(parameters),
        "quantization_level": quantization,
    }


def model_info(path: str | Path) -> dict[str, Any]:
    """The GGUF metadata (``model_info`` in ``/api/show``); long arrays as null, as Ollama does."""
    metadata, parameters = _gguf_facts(*_file_key(path))
    info = {
        key: None if isinstance(value, str) and _SUMMARIZED_ARRAY.match(value) else value
        for key, value in metadata.items()
        if not key.startswith("GGUF.")
    }
    return info | {"general.parameter_count": parameters}


def human_count(count: int) -> str:
    """A parameter count as Ollama prints it: 134.52M, 8.0B."""
    if count >= 1e9:
        return f"{count / 1e9:.1f}B"
    if count >= 1e6:
        return f"{count / 1e6:.2f}M"
    return f"{count / 1e3:.0f}K" if count >= 1e3 else str(count)


def _file_key(path: str | Path) -> tuple[str, int, int]:
    try:
        stat = Path(path).stat()
    except FileNotFoundError:
        raise ModelNotFoundError(
            f"The GGUF file {path} is gone. Put it back, or delete the models made from it "
            f"(ollama.delete) and create them again."
        ) from None
    return str(path), stat.st_mtime_ns, stat.st_size


@lru_cache(maxsize=16)
def _gguf_facts(path: str, mtime_ns: int, size: int) -> tuple[dict[str, Any], int]:
    """Reading a GGUF's header takes seconds (the vocabulary); read each file version once."""
    summary = read_gguf(path)
    return summary.metadata, summary.parameters
