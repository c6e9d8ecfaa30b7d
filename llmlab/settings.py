"""Where the course keeps its files and which model it runs, read from the environment.

Every setting has an environment variable, so a teacher can point a whole class at another model
or cache folder without editing a notebook, and a function argument that wins over it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import psutil
from platformdirs import user_cache_path

MODEL_ENV = "LLMLAB_MODEL"
CACHE_ENV = "LLMLAB_CACHE"
WAVES_ENV = "LLMLAB_SWEEP_WAVES"
LOW_MEMORY_ENV = "LLMLAB_LOW_MEMORY"
GPU_SHARE_ENV = "LLMLAB_GPU_SHARE"
FUZZ_EXAMPLES_ENV = "LLMLAB_FUZZ_EXAMPLES"
#: Below this much memory (the machine's, or its container's limit) a chapter starts fewer model
#: copies: Binder gives a session 2 GB.
LOW_MEMORY_BYTES = 3 * 2**30
DEFAULT_MODEL = "SmolLM2-135M-Instruct"


def cache_dir() -> Path:
    """The folder for everything the course builds once and reuses (models, binaries, logs).

    ``$LLMLAB_CACHE`` if set, else the user's cache folder (``~/.cache/llmlab`` on Linux).
    """
    path = Path(os.environ.get(CACHE_ENV) or user_cache_path("llmlab")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def model_setting(model: str | os.PathLike[str] | None = None) -> str:
    """The model to run: the argument, else ``$LLMLAB_MODEL``, else the offline default."""
    return str(model or os.environ.get(MODEL_ENV) or DEFAULT_MODEL)


def served_model_name(model: str | os.PathLike[str] | None = None) -> str:
    """The name a server gives ``model_setting(model)`` in its API: the last part of its path
    or Hub id (``Qwen/Qwen2.5-7B-Instruct`` is served as ``Qwen2.5-7B-Instruct``)."""
    return model_setting(model).rstrip("/").split("/")[-1]


def sweep_waves() -> int:
    """How many times each slot fills in a load sweep: ``$LLMLAB_SWEEP_WAVES``, else 2.

    Two waves mean every slot refills once, so a level's figures include a steady state and not
    only the start. ``bin/test`` sets 1: the notebooks' sweeps then run the same code on half the
    requests (their saved outputs are from 2)."""
    value = os.environ.get(WAVES_ENV) or "2"
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"${WAVES_ENV} must be a whole number of 1 or more, not {value!r}")
    return int(value)


def sweep_levels(levels: Sequence[int], keep: Sequence[int] = ()) -> list[int]:
    """The levels a notebook's sweep visits (requests in flight, batch sizes): all of ``levels``,
    or in a one-wave sweep (``bin/test``) only the lowest, the highest and those in ``keep`` (the
    ones a later cell reads).

    The test run checks that a sweep's code works and that its two ends compare as the text says;
    the levels in between add minutes of the same code (the saved outputs visit them all)."""
    if sweep_waves() > 1:
        return sorted(levels)
    return sorted({min(levels), max(levels), *(level for level in keep if level in levels)})


def fuzz_examples(default: int = 10) -> int:
    """How many requests the fuzzer draws per operation and kind of request:
    ``$LLMLAB_FUZZ_EXAMPLES``, else ``default``. ``bin/test`` sets 5: chapter 06's fuzzer and the
    fuzz tests then run the same search, seeded, on half the requests."""
    value = os.environ.get(FUZZ_EXAMPLES_ENV) or str(default)
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"${FUZZ_EXAMPLES_ENV} must be a whole number of 1 or more, not {value!r}")
    return int(value)


def gpu_share_setting() -> float | None:
    """``$LLMLAB_GPU_SHARE``: the share of a GPU's memory vLLM may take (its
    ``--gpu-memory-utilization``), for a GPU shared with other work; None when unset."""
    value = os.environ.get(GPU_SHARE_ENV)
    if not value:
        return None
    try:
        share = float(value)
    except ValueError:
        share = 0.0
    if not 0 < share <= 1:
        raise ValueError(f"${GPU_SHARE_ENV} must be a share of the GPU's memory, such as 0.5; "
                         f"not {value!r}")  # fmt: skip
    return share


def low_memory(
    cgroup: Path = Path("/sys/fs/cgroup"), membership: Path = Path("/proc/self/cgroup")
) -> bool:
    """Whether chapters should start fewer copies of the model: ``$LLMLAB_LOW_MEMORY`` (1 or 0),
    else whether the memory this process may use is under ``LOW_MEMORY_BYTES``.

    That memory is the machine's, or less where a container or a cgroup caps it (Binder,
    JupyterHub's spawners): the smallest ``memory.max`` of this process's cgroup and those
    above it (cgroup v2, found from ``membership``), or v1's ``memory.limit_in_bytes``."""
    value = os.environ.get(LOW_MEMORY_ENV)
    if value:
        if value not in ("0", "1"):
            raise ValueError(f"${LOW_MEMORY_ENV} must be 1 or 0, not {value!r}")
        return value == "1"
    own = ""
    if membership.is_file():
        own = next((line[3:] for line in membership.read_text().splitlines()
                    if line.startswith("0::")), "")  # fmt: skip
    parts = Path(own.strip().lstrip("/")).parts
    files = [cgroup.joinpath(*parts[:depth], "memory.max") for depth in range(len(parts) + 1)]
    files.append(cgroup / "memory" / "memory.limit_in_bytes")
    limits = [psutil.virtual_memory().total]
    for path in files:
        text = path.read_text().strip() if path.is_file() else ""
        if text.isdigit():  # "max" (v2) or a huge number (v1) where nothing caps it
            limits.append(int(text))
    return min(limits) < LOW_MEMORY_BYTES
