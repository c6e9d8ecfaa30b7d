"""Where the course keeps its files and which model it runs, read from the environment.

Every setting has an environment variable, so a teacher can point a whole class at another model
or cache folder without editing a notebook, and a function argument that wins over it.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_path

MODEL_ENV = "LLMLAB_MODEL"
CACHE_ENV = "LLMLAB_CACHE"
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
