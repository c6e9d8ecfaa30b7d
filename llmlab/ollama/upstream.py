"""Talking to a model's llama-server: its errors become Ollama's (``ApiError``)."""

from __future__ import annotations

from typing import Any

import httpx

from llmlab.http.common import error_message
from llmlab.http.streaming import StreamError
from llmlab.ollama.runners import Runner
from llmlab.ollama.schemas import ApiError


async def open_stream(runner: Runner, path: str, payload: dict[str, Any]) -> httpx.Response:
    request = runner.http.build_request("POST", path, json=payload)
    response = await runner.http.send(request, stream=True)
    if response.is_error:
        await response.aread()
        await response.aclose()
        raise ApiError(_status(response), error_message(response))
    return response


async def upstream_json(runner: Runner, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    response = await runner.http.post(path, json=payload)
    if response.is_error:
        raise ApiError(_status(response), error_message(response))
    return response.json()


def upstream_failure(error: httpx.HTTPError | StreamError) -> str:
    return f"llama-server stopped answering ({type(error).__name__}: {error}); see its log"


def _status(response: httpx.Response) -> int:
    """llama-server's 4xx (a prompt too long for the context...) is the client's; the rest ours."""
    return response.status_code if response.status_code < 500 else 500
