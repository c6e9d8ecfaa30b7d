"""Look inside GGUF files, convert a Transformers folder to GGUF, and quantize it.

A GGUF file is one self-describing file: a header of key-value metadata (architecture, context
length, tokenizer vocabulary and chat template) followed by the tensors, each stored in its own
type (F32, F16, Q8_0, Q4_K...). llama.cpp and Ollama need nothing else to run a model.

Conversion uses llama.cpp's own ``convert_hf_to_gguf.py`` (the source chapter's
``convert-hf-to-gguf.py`` was renamed in 2024), and quantization its ``llama-quantize``. Both
results are cached: the same input converts once.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from gguf import GGUFReader, GGUFValueType, ReaderField

from llmlab.errors import LLMLabError, ModelNotFoundError
from llmlab.llamacpp.build import find_tools
from llmlab.models import default_gguf, local_folder, resolve_model
from llmlab.settings import DEFAULT_MODEL, cache_dir, model_setting

#: Types ``llama-quantize`` makes that the chapter compares (see ``llama-quantize --help``).
QUANT_TYPES = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K")


class ConversionError(LLMLabError, RuntimeError):
    """The converter or quantizer failed; the message ends with its output."""


@dataclass(frozen=True)
class GGUFSummary:
    """What a GGUF file says about itself."""

    path: Path
    metadata: dict[str, object]
    tensor_types: dict[str, int]  # storage type -> number of tensors
    parameters: int

    @property
    def size_mib(self) -> float:
        return self.path.stat().st_size / 2**20

    @property
    def bits_per_weight(self) -> float:
        return self.path.stat().st_size * 8 / self.parameters


def read_gguf(path: str | Path) -> GGUFSummary:
    """Read a GGUF file's metadata (long arrays such as the vocabulary summarized by length)."""
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"No GGUF file at {path}.")
    reader = GGUFReader(path)
    metadata = {name: _field_value(field) for name, field in reader.fields.items()}
    return GGUFSummary(
        path=path,
        metadata=metadata,
        tensor_types=dict(Counter(tensor.tensor_type.name for tensor in reader.tensors)),
        parameters=sum(int(tensor.n_elements) for tensor in reader.tensors),
    )


def convert_to_gguf(model: str | Path, outtype: str = "f16") -> Path:
    """Convert a Transformers model (a folder, or a hub id: its files are fetched first) to
    GGUF with llama.cpp's converter (cached by name)."""
    path = Path(model).expanduser()
    name = path.name if path.is_dir() else str(model).split("/")[-1]
    out = cache_dir() / "gguf" / f"{name}-{outtype.upper()}.gguf"
    if out.is_file():  # converted before: no hub request, and none needed offline
        return out
    model_dir = local_folder(model)
    converter = find_tools().converter
    if converter is None:
        raise ConversionError(
            "convert_hf_to_gguf.py was not found next to llama-server; unset LLAMA_SERVER to let "
            "the course build llama.cpp, or put the script beside your llama-server."
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    _run([sys.executable, str(converter), str(model_dir), "--outtype", outtype.lower(),
          "--outfile", str(partial)], "convert_hf_to_gguf.py")  # fmt: skip
    partial.rename(out)
    return out


def course_gguf(model: str | Path | None = None) -> Path:
    """The GGUF file that llama-server and Ollama serve for the model setting (the argument, else
    ``$LLMLAB_MODEL``): the shipped Q4_1 file for the default model, a ``.gguf`` setting as it
    is, and any other model converted to 16-bit and quantized to Q4_K_M here, once."""
    setting = model_setting(model)
    if setting == DEFAULT_MODEL:
        return default_gguf()
    if setting.endswith(".gguf"):
        if not Path(setting).expanduser().is_file():
            raise ModelNotFoundError(f"No GGUF file at {setting}.")
        return Path(setting).expanduser()
    return quantize(convert_to_gguf(resolve_model(setting), "f16"), "Q4_K_M")


def quantize(source: str | Path, quant_type: str) -> Path:
    """Quantize a (16-bit) GGUF with ``llama-quantize`` into ``quant_type`` (cached by name)."""
    source = Path(source)
    if quant_type not in QUANT_TYPES:
        raise ValueError(f"Unknown quantization {quant_type!r}; choose one of {QUANT_TYPES}")
    stem = source.stem.rsplit("-", 1)[0]
    out = source.with_name(f"{stem}-{quant_type}.gguf")
    if out.is_file():
        return out
    quantizer = find_tools().quantize
    if quantizer is None:
        raise ConversionError("llama-quantize was not found next to llama-server.")
    partial = out.with_suffix(".partial")
    _run([str(quantizer), str(source), str(partial), quant_type], "llama-quantize")
    partial.rename(out)
    return out


def _run(command: list[str], tool: str) -> None:
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    if run.returncode:
        tail = "\n".join((run.stdout + run.stderr).splitlines()[-20:])
        raise ConversionError(f"{tool} failed:\n{tail}")


def _field_value(field: ReaderField) -> object:
    if field.types and field.types[0] == GGUFValueType.ARRAY:
        return f"[{len(field.data)} items]"
    return field.contents()
