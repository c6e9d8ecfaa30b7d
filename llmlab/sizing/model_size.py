"""How big a model is, read without loading (or downloading) a weight.

A hub id is sized from the hub's safetensors metadata, a folder from its safetensors headers;
config.json gives the layers and KV heads the KV cache depends on. The exercise 1 loader
(``solutions.load_7b``) plans from this before it downloads anything.

The models the chapters name (Qwen2.5 7B, 32B and 72B Instruct) are sized offline: the course
ships their config.json (``configs/``, with their licences), and the parameters are counted on a
model built on PyTorch's ``meta`` device, where a tensor has a shape and no memory.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmlab.errors import LLMLabError, ModelNotFoundError
from llmlab.sizing.memory import Architecture

#: config.json of the models the chapters name, by hub id (``configs/README.md``: licences).
CONFIGS = Path(__file__).parent / "configs"
SHIPPED_CONFIGS = {
    f"Qwen/{name}": CONFIGS / name
    for name in ("Qwen2.5-7B-Instruct", "Qwen2.5-32B-Instruct", "Qwen2.5-72B-Instruct")
}


class CannotSizeModelError(LLMLabError):
    """The model's size cannot be known without downloading it (no hub access, no safetensors)."""


@dataclass(frozen=True)
class ModelSize:
    """What the plan needs to know about a model, read without loading a weight."""

    parameters: int
    #: From config.json: layers and KV heads decide the KV cache. None when the config is odd.
    architecture: Architecture | None = None
    #: Embedding and output-layer parameters, which bitsandbytes keeps in 16-bit.
    unquantized_parameters: int = 0
    source: str = ""


def count_parameters(model: str) -> int:
    """Parameters of a local folder (safetensors headers) or a hub id (hub metadata)."""
    path = Path(model)
    return count_parameters_on_disk(path) if path.is_dir() else count_parameters_on_hub(model)


def count_parameters_on_disk(folder: Path) -> int:
    """Sum the tensor shapes in the folder's safetensors headers; no tensor is read.

    A tied output layer is stored once, so this equals ``model.num_parameters()``. (Packed
    GPTQ/AWQ checkpoints would be undercounted: their int32 tensors hold several weights each.)
    """
    from safetensors import safe_open

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise CannotSizeModelError(
            f"{folder} has no .safetensors files, so its size is unknown without loading it. "
            "Save it with save_pretrained (safetensors is the default) and try again."
        )
    total = 0
    for file in files:
        with safe_open(file, framework="pt") as header:
            for key in header.keys():  # noqa: SIM118 (a safetensors handle, not a dict)
                total += math.prod(header.get_slice(key).get_shape())
    return total


def count_parameters_on_hub(repo_id: str) -> int:
    """Ask the hub for the parameter count it reads from the repository's safetensors headers."""
    from huggingface_hub import HfApi, get_safetensors_metadata
    from huggingface_hub.errors import (
        GatedRepoError,
        NotASafetensorsRepoError,
        RepositoryNotFoundError,
    )

    try:
        info = HfApi().model_info(repo_id, files_metadata=False, timeout=15)
        if info.safetensors is not None:
            return int(info.safetensors.total)
        return sum(get_safetensors_metadata(repo_id).parameter_count.values())
    except GatedRepoError as error:
        raise ModelNotFoundError(
            f"{repo_id} is gated: accept its license on the hub and log in (hf auth login)."
        ) from error
    except RepositoryNotFoundError as error:
        raise ModelNotFoundError(f"No model {repo_id!r} on the hub (or it is private).") from error
    except NotASafetensorsRepoError as error:
        raise CannotSizeModelError(
            f"{repo_id} has no safetensors weights, so its size is unknown before downloading."
        ) from error
    except Exception as error:  # transport errors differ by huggingface_hub version
        raise CannotSizeModelError(
            f"Cannot size {repo_id} offline: the hub is not reachable "
            f"({type(error).__name__}: {error}), and its size is checked before anything is "
            "downloaded. Point MODEL at a local Transformers folder (for example one written by "
            "save_pretrained, or a hub snapshot copied from a machine with internet), or run "
            "`python -m solutions.load_7b SmolLM2-135M-Instruct` for the course's offline model."
        ) from error


def cached_snapshot(repo_id: str) -> Path | None:
    """A complete copy of ``repo_id`` in the local hub cache, if an earlier download left one."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(repo_id, "config.json")
    if not isinstance(config, str):
        return None
    folder = Path(config).parent
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = set(json.loads(index.read_text())["weight_map"].values())
        return folder if all((folder / shard).is_file() for shard in shards) else None
    return folder if (folder / "model.safetensors").is_file() else None


def count_parameters_from_config(config: Any) -> int:
    """Build the model on the ``meta`` device (accelerate's ``init_empty_weights``: shapes, no
    memory, no weights) and count its parameters: exact, for any architecture Transformers has."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config)
    return int(model.num_parameters())


def size_model(model: str) -> ModelSize:
    """Parameters and layout of ``model`` (a folder or hub id), from metadata and config only;
    offline for the models in ``SHIPPED_CONFIGS``."""
    from transformers import AutoConfig

    shipped = SHIPPED_CONFIGS.get(model)
    if shipped is not None:
        config = AutoConfig.from_pretrained(shipped)
        parameters = count_parameters_from_config(config)
        source = "its config.json shipped with the course, counted on the meta device"
        return _model_size(config.get_text_config(), parameters, source)
    parameters = count_parameters(model)
    source = "safetensors headers on disk" if Path(model).is_dir() else "hub metadata"
    try:
        config = AutoConfig.from_pretrained(model).get_text_config()
    except (OSError, ValueError) as error:  # unreachable, or a model type this version lacks
        raise CannotSizeModelError(f"Cannot read the config of {model}: {error}") from error
    return _model_size(config, parameters, source)


def _model_size(config: Any, parameters: int, source: str) -> ModelSize:
    """The KV-cache layout and the 16-bit embeddings, where the config has the usual fields."""
    try:
        architecture = Architecture.from_config(config, parameters)
        embeddings = config.vocab_size * config.hidden_size
        tied = getattr(config, "tie_word_embeddings", False)
        return ModelSize(parameters, architecture, embeddings * (1 if tied else 2), source)
    except (AttributeError, TypeError):  # a config without the usual fields: skip the KV cache
        return ModelSize(parameters, source=source)
