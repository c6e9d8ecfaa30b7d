"""A client for llama-server's native API: the source chapter's ``LlamaCppClient``, done right.

The source chapter's client builds chat prompts as ``[user] ...\\n[assistant] `` and sends them
to ``/completion``. No model was trained on that format (chapter 01 shows the answer it gets).
This client asks the server to format a chat with the model's own template (``/apply-template``,
read from the GGUF file) and then completes that text, so ``chat`` here and the OpenAI-style
``/v1/chat/completions`` see the same prompt. It also streams (Server-Sent Events), takes an API
key, has a timeout, and turns an error answer into an exception that carries the server's words.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal, TypedDict, overload

import httpx

from llmlab.errors import LLMLabError
from llmlab.http.common import LIMITS, bearer, error_message, stream_headers
from llmlab.http.streaming import sse_json
from llmlab.messages import Message, validate_messages


class LlamaCppError(LLMLabError, RuntimeError):
    """llama-server answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"llama-server answered {status}: {message}")
        self.status = status


class Completion(TypedDict, total=False):
    """llama-server's ``/completion`` answer, or one streamed piece of it (a dict, typed).

    A piece has ``content`` (and ``stop: false``); the whole answer, or the last piece, has
    ``stop: true``, why it stopped, the token counts and the timings in milliseconds."""

    content: str
    stop: bool
    #: "eos" (the model ended its turn), "limit" (``n_predict`` reached), "word" (a stop word).
    stop_type: str
    tokens_predicted: int
    tokens_evaluated: int
    #: ``prompt_ms``, ``predicted_ms``, ``predicted_per_second``...
    timings: dict[str, float]
    model: str


class LlamaCppClient:
    """Native-API client for one llama-server (``base_url`` like ``http://127.0.0.1:8080``)."""

    def __init__(
        self, base_url: str, *, api_key: str | None = None, timeout_s: float = 120.0
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=bearer(api_key), timeout=timeout_s, limits=LIMITS
        )

    def __enter__(self) -> LlamaCppClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @overload
    def generate(
        self, prompt: str, *, stream: Literal[False] = ..., **options: Any
    ) -> Completion: ...
    @overload
    def generate(
        self, prompt: str, *, stream: Literal[True], **options: Any
    ) -> Iterator[Completion]: ...
    @overload
    def generate(
        self, prompt: str, *, stream: bool, **options: Any
    ) -> Completion | Iterator[Completion]: ...
    def generate(
        self, prompt: str, *, stream: bool = False, **options: Any
    ) -> Completion | Iterator[Completion]:
        """``POST /completion``: continue ``prompt`` as it is.

        ``options`` are llama-server's own names: ``n_predict`` (not ``max_tokens``),
        ``temperature``, ``top_k``, ``top_p``, ``stop``, ``seed``, ``cache_prompt``... The answer
        has ``content``, ``stop_type`` (eos, limit, word) and ``timings``. Streaming yields the
        same fields piece by piece; the last piece has ``stop: true`` and the timings.
        """
        body = {"prompt": prompt, **options, "stream": stream}
        if stream:
            return self._stream("/completion", body)
        return self._post("/completion", body)

    def apply_template(self, messages: Sequence[Message]) -> str:
        """``POST /apply-template``: the text the model's own chat template makes of a chat."""
        body = {"messages": validate_messages(messages)}
        return self._post("/apply-template", body)["prompt"]

    @overload
    def chat(
        self, messages: Sequence[Message], *, stream: Literal[False] = ..., **options: Any
    ) -> Completion: ...
    @overload
    def chat(
        self, messages: Sequence[Message], *, stream: Literal[True], **options: Any
    ) -> Iterator[Completion]: ...
    @overload
    def chat(
        self, messages: Sequence[Message], *, stream: bool, **options: Any
    ) -> Completion | Iterator[Completion]: ...
    def chat(
        self, messages: Sequence[Message], *, stream: bool = False, **options: Any
    ) -> Completion | Iterator[Completion]:
        """Answer a chat: the model's template applied by the server, then ``/completion``."""
        return self.generate(self.apply_template(messages), stream=stream, **options)

    def tokenize(self, text: str) -> list[int]:
        return self._post("/tokenize", {"content": text})["tokens"]

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._post("/detokenize", {"tokens": list(tokens)})["content"]

    def props(self) -> dict[str, Any]:
        """Server settings: slots, context size, the chat template, the model path."""
        return self._get("/props").json()

    def slots(self) -> list[dict[str, Any]]:
        """What each parallel slot is doing (needs the server's ``--slots``, on by default)."""
        return self._get("/slots").json()

    def metrics(self) -> str:
        """Prometheus text: tokens processed, requests, KV-cache use (needs ``--metrics``)."""
        return self._get("/metrics").text

    def _get(self, path: str) -> httpx.Response:
        return _checked(self._http.get(path))

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        return _checked(self._http.post(path, json=body)).json()

    def _stream(self, path: str, body: dict[str, Any]) -> Iterator[Any]:
        with self._http.stream("POST", path, json=body, headers=stream_headers()) as response:
            if response.is_error:
                response.read()
                _checked(response)
            yield from sse_json(response)


def _checked(response: httpx.Response) -> httpx.Response:
    if response.is_error:
        raise LlamaCppError(response.status_code, error_message(response))
    return response
