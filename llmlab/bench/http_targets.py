"""The targets that reach a server over HTTP: the OpenAI API (vLLM, llama-server, the course's
service, Ollama's ``/v1``), the source chapter's ``/chat``, llama-server's native
``/completion`` and Ollama's native ``/api/chat``. Each builds a request and reads each chunk of
the answer into a ``Piece``; ``Target.send`` times them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import httpx

from llmlab.bench.records import BenchmarkError
from llmlab.bench.targets import Chat, Piece, Target, unpack
from llmlab.http.common import LIMITS, bearer, error_message, stream_headers
from llmlab.http.streaming import andjson, asse_json
from llmlab.messages import Message


class HttpTarget(Target):
    """A server reached over HTTP: one ``httpx.AsyncClient`` while the target is open.

    Every HTTP target takes ``base_url`` (and ``model`` where the API names one) and the keywords
    ``max_tokens``, ``api_key``, ``timeout_s`` (per request) and ``name`` (for the results).
    Streamed requests go out with ``stream_headers()``: llama-server drops a connection reused
    right after a stream, which would show up here as failed requests.
    """

    #: The name results show when neither a name nor a model is given.
    default_name = "server"
    #: The streamed answer comes as one JSON object a line, not as Server-Sent Events.
    ndjson = False

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        max_tokens: int = 64,
        api_key: str | None = None,
        timeout_s: float = 600,
        name: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_tokens = max_tokens
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.name = name or model or self.default_name
        self._client: httpx.AsyncClient | None = None
        self._users = 0  # nested `async with` (a sweep around its runs) share one client

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} at {self.base_url}>"

    async def __aenter__(self) -> HttpTarget:
        if self._users == 0:
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=bearer(self.api_key),
                timeout=self.timeout_s,
                limits=LIMITS,
            )
        self._users += 1
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._users -= 1
        if self._users == 0 and self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError(f"open the target first: `async with {type(self).__name__}(...)`")
        return self._client

    async def post(self, path: str, body: dict, headers: Mapping[str, str] | None = None) -> dict:
        """A plain request; the answer's JSON."""
        response = await self.client.post(path, json=body, headers=headers)
        await _check(response)
        return response.json()

    async def answer(
        self, path: str, body: dict, read: Callable[[dict], Piece], headers: Mapping[str, str]
    ) -> AsyncIterator[Piece]:
        """A plain request, read as pieces: the start, then the whole answer as one piece."""
        response = await self.client.post(path, json=body, headers=headers)
        await _check(response)
        yield Piece()
        yield read(response.json())

    async def stream(
        self, path: str, body: dict, read: Callable[[dict], Piece], headers: Mapping[str, str]
    ) -> AsyncIterator[Piece]:
        """A streamed request, read as pieces: the start, then one piece per chunk. The answer
        comes as Server-Sent Events, or as one JSON object a line (NDJSON: Ollama's native API)
        when the target's ``ndjson`` is set."""
        headers = stream_headers() | dict(headers)
        async with self.client.stream("POST", path, json=body, headers=headers) as answer:
            await _check(answer)
            yield Piece()
            async for chunk in (andjson if self.ndjson else asse_json)(answer):
                yield read(chunk)


async def _check(response: httpx.Response) -> None:
    if response.is_error:
        await response.aread()
        raise BenchmarkError(f"HTTP {response.status_code}: {error_message(response)}")


class OpenAIChat(HttpTarget):
    """``POST /chat/completions`` under an OpenAI-style ``base_url`` (ending in ``/v1``): vLLM,
    llama-server, the course's service (``llmlab.service``), Ollama's ``/v1``.

    Streamed, it asks for ``stream_options.include_usage`` so tokens are counted by the server,
    not by chunks. ``stream=False`` waits for the whole answer (TTFT = E2E). ``extra_body`` goes
    into every request's body: a server's own fields (``transformers serve`` has no
    ``ignore_eos`` and refuses it; ``llmlab.servers.transformers_serve.FORCED_LENGTH``).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        ignore_eos: bool = True,
        stream: bool = True,
        extra_body: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(base_url, model, **options)
        self.ignore_eos = ignore_eos
        self.streams = stream
        self.extra_body = dict(extra_body or {})

    def pieces(self, request: Sequence[Message] | Chat) -> AsyncIterator[Piece]:
        messages, headers = unpack(request)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "temperature": 0,
            "max_tokens": self.max_tokens,
            **({"ignore_eos": True} if self.ignore_eos else {}),
            **self.extra_body,
        }
        if not self.streams:
            return self.answer("/chat/completions", body, _openai_piece, headers)
        body |= {"stream": True, "stream_options": {"include_usage": True}}
        return self.stream("/chat/completions", body, _openai_piece, headers)


def _openai_piece(chunk: dict) -> Piece:
    """A streamed chunk (``delta``) or a whole answer (``message``) of the OpenAI API."""
    choice = (chunk.get("choices") or [{}])[0]
    usage = chunk.get("usage") or {}
    return Piece(
        (choice.get("delta") or choice.get("message") or {}).get("content") or "",
        usage.get("completion_tokens"),
        usage.get("prompt_tokens"),
        (usage.get("prompt_tokens_details") or {}).get("cached_tokens"),
        chunk.get("model"),
        # Complete once a choice says why it ended (the usage chunk may follow).
        done=bool(choice.get("finish_reason")),
    )


class CourseChat(HttpTarget):
    """``POST /chat`` of the source chapter's service (``llmlab.service.naive``): no streaming,
    and an empty ``usage``. With ``ignore_eos`` every answer is exactly ``max_tokens`` long, so
    that is the count where the server gives none."""

    streams = False
    default_name = "course /chat"

    def pieces(self, request: Sequence[Message] | Chat) -> AsyncIterator[Piece]:
        messages, headers = unpack(request)
        body = {"messages": list(messages), "temperature": 0, "max_tokens": self.max_tokens,
                "ignore_eos": True}  # fmt: skip
        return self.answer("/chat", body, self._piece, headers)

    def _piece(self, answer: dict) -> Piece:
        tokens = (answer.get("usage") or {}).get("completion_tokens", self.max_tokens)
        return Piece(answer["text"], tokens, done=True)


class LlamaCppCompletion(HttpTarget):
    """llama-server's native ``POST /completion`` (SSE), ``base_url`` without ``/v1``.

    It completes text, so each chat is first formatted by the model's own template
    (``/apply-template``) in ``prepare``, before the clock starts. Tokens are counted from
    ``tokens_predicted``; ``n_predict`` and ``ignore_eos`` force the length.
    """

    default_name = "llama-server /completion"

    def __init__(self, base_url: str, *, ignore_eos: bool = True, **options: Any) -> None:
        super().__init__(base_url, **options)
        self.ignore_eos = ignore_eos

    async def prepare(self, chat: Sequence[Message] | Chat) -> tuple[str, dict[str, str]]:
        messages, headers = unpack(chat)
        body = {"messages": list(messages)}
        return (await self.post("/apply-template", body, headers))["prompt"], headers

    def pieces(self, request: tuple[str, dict[str, str]]) -> AsyncIterator[Piece]:
        prompt, headers = request
        body = {"prompt": prompt, "n_predict": self.max_tokens, "temperature": 0,
                "ignore_eos": self.ignore_eos, "stream": True}  # fmt: skip
        return self.stream("/completion", body, _llamacpp_piece, headers)


def _llamacpp_piece(chunk: dict) -> Piece:
    return Piece(
        chunk.get("content", ""),
        chunk.get("tokens_predicted"),
        chunk.get("tokens_evaluated"),
        model=chunk.get("model"),
        done=bool(chunk.get("stop")),
    )


class OllamaChat(HttpTarget):
    """Ollama's native ``POST /api/chat`` (NDJSON), ``base_url`` like ``http://127.0.0.1:11434``.

    Ollama has no ``ignore_eos``: ``num_predict`` caps the answer but the model may stop
    earlier, so compare its output tokens (``eval_count``) with the other backends'.
    """

    ndjson = True

    def pieces(self, request: Sequence[Message] | Chat) -> AsyncIterator[Piece]:
        messages, headers = unpack(request)
        body = {"model": self.model, "messages": list(messages), "stream": True,
                "options": {"num_predict": self.max_tokens, "temperature": 0}}  # fmt: skip
        return self.stream("/api/chat", body, _ollama_piece, headers)


def _ollama_piece(chunk: dict) -> Piece:
    text = (chunk.get("message") or {}).get("content", "")
    return Piece(
        text,
        chunk.get("eval_count"),
        chunk.get("prompt_eval_count"),
        model=chunk.get("model"),
        done=bool(chunk.get("done")),
    )
