"""What the course's HTTP clients share."""

from __future__ import annotations

from typing import Any, Protocol

import httpx

#: Drop idle keep-alive connections after 1 s. llama-server (cpp-httplib) closes them after 5 s,
#: httpx after 5 s too: with equal timeouts a request can go out on a connection the server is
#: closing at that moment, and fails with "Server disconnected without sending a response".
LIMITS = httpx.Limits(keepalive_expiry=1.0)


class ErrorAnswer(Protocol):
    """An HTTP response of any client the course uses (httpx, requests, the openai package's)."""

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


def error_message(response: ErrorAnswer) -> str:
    """The server's own words about an error answer."""
    try:
        return error_from_body(response.json())
    except ValueError:
        return response.text[:300]


def error_from_body(body: object) -> str:
    """The message of an error body, whichever shape it uses: OpenAI-style
    ``{"error": {"message": ...}}`` (vLLM, llama-server), ``{"error": "..."}`` (Ollama), or text."""
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        return str(error.get("message") or error)[:300]
    return str(error)[:300]


def bearer(api_key: str | None) -> dict[str, str]:
    """The ``Authorization`` header for an API key (none without one)."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def stream_headers() -> dict[str, str]:
    """Headers for a streamed request: do not reuse its connection afterwards.

    Measured here: a request sent on a connection just after llama-server finished streaming on
    it fails ("Server disconnected without sending a response") about one time in four, and a
    fresh connection costs well under a millisecond. A new dict each call: httpx-sse adds to it.
    """
    return {"Connection": "close"}
