"""Reading a streamed answer: Server-Sent Events (OpenAI-style APIs, llama-server) and NDJSON
(Ollama), the one place in the course that parses either.

Every stream the course reads is a sequence of JSON objects. Three things are easy to get wrong
when each caller splits lines by hand, so they are done here once:

* an SSE event is ``data:`` with or without a space, may span several ``data:`` lines, and
  OpenAI-style servers end the stream with ``data: [DONE]`` (llama-server's native API does
  not): httpx-sse parses the events, and ``[DONE]`` ends the iteration;
* a server that fails after it has answered 200 can only say so inside the stream (vLLM and
  llama-server send ``{"error": {...}}`` as an event, Ollama ``{"error": "..."}`` as a line):
  that raises ``StreamError`` with the server's words instead of passing as a chunk;
* blank NDJSON lines (keep-alives) are skipped.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import httpx
from httpx_sse import EventSource

from llmlab.errors import LLMLabError
from llmlab.http.common import error_from_body

#: The event an OpenAI-style stream ends with.
DONE = "[DONE]"


class StreamError(LLMLabError, RuntimeError):
    """The server reported an error inside a stream it had started with 200."""


def sse_json(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """Each event's JSON from a streamed ``response``, until ``[DONE]`` or the end."""
    for event in EventSource(response).iter_sse():
        if event.data == DONE:
            return
        yield _checked(json.loads(event.data))


async def asse_json(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """``sse_json`` for an ``httpx.AsyncClient``'s response."""
    async for event in EventSource(response).aiter_sse():
        if event.data == DONE:
            return
        yield _checked(json.loads(event.data))


def ndjson(lines: Iterable[str | bytes]) -> Iterator[dict[str, Any]]:
    """Each line's JSON from a stream of lines (``requests``' ``iter_lines``, httpx's)."""
    for line in lines:
        if line.strip():
            yield _checked(json.loads(line))


async def andjson(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """``ndjson`` for an ``httpx.AsyncClient``'s streamed response."""
    async for line in response.aiter_lines():
        if line.strip():
            yield _checked(json.loads(line))


def _checked(chunk: dict[str, Any]) -> dict[str, Any]:
    if isinstance(chunk, dict) and chunk.get("error"):
        raise StreamError(f"error in the stream: {error_from_body(chunk)}")
    return chunk
