"""A small client for Ollama's HTTP API on ``requests``: the source chapter's ``OllamaClient``,
done right.

The source chapter's client had three faults this one fixes:

* ``chat`` flattened the messages into one ``role: text`` prompt for ``/api/generate`` and
  skipped the system message. Here ``chat`` posts the messages to ``/api/chat``, where the
  model's own chat template formats them, system message included;
* it had no timeout, so a stalled server hung the notebook; here every request has one;
* it returned whatever JSON came back, errors included. Here an error status raises
  :class:`OllamaError` with the server's own words, and a server that is not running raises
  :class:`OllamaConnectionError`, which says so.

It also streams: with ``stream=True`` the answer is an iterator of the NDJSON objects as they
arrive, the last one with ``done: true`` and the timings. For everything else (create, pull,
embed...) use the official ``ollama`` package; this client shows what goes over the wire.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, TypedDict, overload

import requests

from llmlab.errors import LLMLabError
from llmlab.http.common import error_message
from llmlab.http.streaming import StreamError, ndjson


class OllamaError(LLMLabError, RuntimeError):
    """The server answered with an error status (or an error line in a stream)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Ollama answered {status}: {message}")
        self.status = status
        self.message = message


class OllamaConnectionError(LLMLabError, ConnectionError):
    """Nothing answered at the host."""


class _Timings(TypedDict, total=False):
    """What the last piece of an answer adds: token counts and durations in nanoseconds."""

    done_reason: str
    total_duration: int
    load_duration: int
    prompt_eval_count: int
    prompt_eval_duration: int
    eval_count: int
    eval_duration: int


class GenerateResponse(_Timings, total=False):
    """``/api/generate``'s answer, or one streamed piece of it (a dict, typed)."""

    model: str
    created_at: str
    response: str
    done: bool


class ChatMessage(TypedDict):
    role: str
    content: str


class ChatResponse(_Timings, total=False):
    """``/api/chat``'s answer, or one streamed piece of it (a dict, typed)."""

    model: str
    created_at: str
    message: ChatMessage
    done: bool


class OllamaClient:
    """Client for one Ollama (or the course's Ollama-compatible server) at ``host``."""

    def __init__(self, host: str = "http://127.0.0.1:11434", *, timeout_s: float = 120.0) -> None:
        self.host = host.rstrip("/")
        self.timeout = (5.0, timeout_s)  # (connect, read): read is the longest pause allowed
        self._session = requests.Session()

    def __enter__(self) -> OllamaClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    @overload
    def generate(
        self, model: str, prompt: str, *, system: str | None = ..., stream: Literal[False] = ...,
        keep_alive: float | str | None = ..., options: Mapping[str, Any] | None = ...,
        **sampling: Any,
    ) -> GenerateResponse: ...  # fmt: skip
    @overload
    def generate(
        self, model: str, prompt: str, *, system: str | None = ..., stream: Literal[True],
        keep_alive: float | str | None = ..., options: Mapping[str, Any] | None = ...,
        **sampling: Any,
    ) -> Iterator[GenerateResponse]: ...  # fmt: skip
    def generate(
        self,
        model: str,
        prompt: str,
        *,
        system: str | None = None,
        stream: bool = False,
        keep_alive: float | str | None = None,
        options: Mapping[str, Any] | None = None,
        **sampling: Any,
    ) -> GenerateResponse | Iterator[GenerateResponse]:
        """``POST /api/generate``: ``prompt`` through the model's template (with ``system``).

        Sampling options go in ``options`` or as keywords, by Ollama's names (``temperature=0,
        num_predict=32``). The answer's text is ``["response"]``.
        """
        body: dict[str, Any] = {"model": model, "prompt": prompt}
        if system is not None:
            body["system"] = system
        options = {**(options or {}), **sampling}
        return self._post("/api/generate", body, stream, keep_alive, options)

    @overload
    def chat(
        self, model: str, messages: Sequence[Mapping[str, str]], *, stream: Literal[False] = ...,
        keep_alive: float | str | None = ..., options: Mapping[str, Any] | None = ...,
        **sampling: Any,
    ) -> ChatResponse: ...  # fmt: skip
    @overload
    def chat(
        self, model: str, messages: Sequence[Mapping[str, str]], *, stream: Literal[True],
        keep_alive: float | str | None = ..., options: Mapping[str, Any] | None = ...,
        **sampling: Any,
    ) -> Iterator[ChatResponse]: ...  # fmt: skip
    def chat(
        self,
        model: str,
        messages: Sequence[Mapping[str, str]],
        *,
        stream: bool = False,
        keep_alive: float | str | None = None,
        options: Mapping[str, Any] | None = None,
        **sampling: Any,
    ) -> ChatResponse | Iterator[ChatResponse]:
        """``POST /api/chat``: every message, the system one too. The reply is
        ``["message"]["content"]``; streamed, each piece carries a part of it."""
        body = {"model": model, "messages": [dict(message) for message in messages]}
        options = {**(options or {}), **sampling}
        return self._post("/api/chat", body, stream, keep_alive, options)

    def list_models(self) -> list[dict[str, Any]]:
        """``GET /api/tags``: the models there are, with size, digest and details."""
        return self._checked(self._request("GET", "/api/tags"))["models"]

    def show(self, model: str) -> dict[str, Any]:
        """``POST /api/show``: a model's Modelfile, parameters, template and details."""
        return self._checked(self._request("POST", "/api/show", {"model": model}))

    def _post(
        self,
        path: str,
        body: dict[str, Any],
        stream: bool,
        keep_alive: float | str | None,
        options: dict[str, Any],
    ) -> Any:
        body["stream"] = stream
        if keep_alive is not None:
            body["keep_alive"] = keep_alive
        if options:
            body["options"] = options
        if stream:
            return self._stream(path, body)
        return self._checked(self._request("POST", path, body))

    def _stream(self, path: str, body: dict[str, Any]) -> Iterator[Any]:
        with self._request("POST", path, body, stream=True) as response:
            if not response.ok:
                self._checked(response)
            try:
                yield from ndjson(response.iter_lines())
            except StreamError as error:  # Ollama's {"error": ...} line, after its 200
                raise OllamaError(response.status_code, str(error)) from None

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, stream: bool = False
    ) -> requests.Response:
        try:
            return self._session.request(
                method, self.host + path, json=body, stream=stream, timeout=self.timeout
            )
        except requests.ConnectionError as error:
            raise OllamaConnectionError(
                f"Nothing answers at {self.host}: is the server running? Start it with "
                f"`ollama serve`, or the course's with llmlab.ollama.ollama_server().start(). "
                f"({error.__class__.__name__})"
            ) from None

    @staticmethod
    def _checked(response: requests.Response) -> Any:
        if not response.ok:
            raise OllamaError(response.status_code, error_message(response))
        return response.json()
