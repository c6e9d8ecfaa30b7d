"""Ollama's request options as llama-server takes them: sampling options renamed, ``keep_alive``
durations in seconds, ``format`` as a JSON-schema grammar; anything else is a 400 that names
what is accepted."""

from __future__ import annotations

import math
import re
from typing import Any

from llmlab.ollama.modelfile import PARAMETER_TYPES, convert_parameter
from llmlab.ollama.schemas import ApiError

#: Ollama's option names and the names llama-server's ``/completion`` gives them.
OPTIONS = {
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "seed": "seed",
    "num_predict": "n_predict",
    "num_keep": "n_keep",
    "stop": "stop",
    "repeat_penalty": "repeat_penalty",
    "repeat_last_n": "repeat_last_n",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "mirostat": "mirostat",
    "mirostat_tau": "mirostat_tau",
    "mirostat_eta": "mirostat_eta",
}
DURATION = re.compile(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)")
SECONDS_PER_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def keep_alive_seconds(value: float | str | None) -> float | None:
    """Ollama's ``keep_alive``: seconds, or a duration like ``"5m"``; negative means forever."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        unsigned = text.removeprefix("-")
        parts = DURATION.findall(unsigned)
        if not parts or "".join(number + unit for number, unit in parts) != unsigned:
            raise ApiError(
                400, f"keep_alive {value!r} is not a duration like 5m, 30s or 0"
            ) from None
        seconds = sum(float(number) * SECONDS_PER_UNIT[unit] for number, unit in parts)
        seconds = -seconds if text.startswith("-") else seconds
    return math.inf if seconds < 0 else seconds


def llama_options(options: dict[str, Any]) -> dict[str, Any]:
    """Ollama options (or Modelfile PARAMETERs) as llama-server's ``/completion`` fields."""
    converted = {}
    for name, value in options.items():
        if name == "num_ctx":
            continue  # a load-time setting: it picks the runner
        if name not in OPTIONS:
            raise ApiError(
                400, f"option {name!r} is not supported by this server; it takes "
                f"{', '.join(sorted([*OPTIONS, 'num_ctx']))}",
            )  # fmt: skip
        if name in PARAMETER_TYPES:
            try:
                value = convert_parameter(name, value)
            except ValueError as error:
                raise ApiError(400, f"option {error}") from None
        if name == "num_predict" and value < -1:
            value = -1  # Ollama's -2, "fill the context", is what -1 does here
        converted[OPTIONS[name]] = value
    return converted


def json_schema(value: str | dict[str, Any] | None) -> dict[str, Any]:
    """``format``: ``"json"`` or a JSON schema, which llama-server turns into a grammar."""
    if not value:
        return {}
    if value == "json":
        return {"json_schema": {}}
    if isinstance(value, dict):
        return {"json_schema": value}
    raise ApiError(400, f'format must be "json" or a JSON schema, not {value!r}')
