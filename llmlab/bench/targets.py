"""Targets: what the benchmark sends one request to, and how it reads the answer.

Every target has the same timing loop (``Target.send``): the clock starts when the request goes
out and each chunk that carries text is stamped as it arrives. Targets differ only in how they
build a request and read a chunk into a ``Piece`` (text, and the token counts the server
reports). vLLM's own benchmark copies its timing loop into every backend function, and its
users report wrong TTFT figures from it; here there is one.

Every request is greedy, with a fixed length where the backend can force one (``ignore_eos``:
vLLM, llama-server and the course's service accept it; Ollama cannot), so backends do equal work.
A request that fails (error status, no connection, timeout, empty answer) becomes a record with
its error, never an exception: a benchmark counts failures, it does not stop at the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from llmlab.bench.records import BenchmarkError, RequestRecord
from llmlab.http.common import LIMITS, bearer, error_message, stream_headers
from llmlab.http.streaming import StreamError, andjson, asse_json
from llmlab.messages import Message

if TYPE_CHECKING:
    from llmlab.local.generation import LocalLLM


@dataclass(frozen=True)
class Piece:
    """What one chunk of an answer says: its text, and token counts where the server gives them
    (usually only in the last chunk)."""

    text: str = ""
    output_tokens: int | None = None
    prompt_tokens: int | None = None


def error_text(error: BaseException) -> str:
    """One line that says why a request failed."""
    if isinstance(error, BenchmarkError | StreamError):  # already says what happened
        return str(error)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class Target(ABC):
    """Something that answers chats. Use it as ``async with target:`` (``run`` does that)."""

    #: The name results and plots show.
    name: str
    #: Most requests it can take at once (None: no limit of its own).
    max_concurrency: int | None = None
    #: False when the whole answer comes at once (then TTFT = E2E).
    streams: bool = True

    async def __aenter__(self) -> Target:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def prepare(self, messages: Sequence[Message]) -> Any:
        """Turn a chat into this target's request before the clock starts (default: as is)."""
        return messages

    @abstractmethod
    def pieces(self, request: Any) -> AsyncIterator[Piece]:
        """Send one prepared request and yield what each chunk of the answer says."""

    async def send(self, request: Any) -> RequestRecord:
        """Send one prepared request and record when each piece of text arrived."""
        record = RequestRecord(sent_s=time.perf_counter())
        try:
            async for piece in self.pieces(request):
                if piece.text:
                    record.chunk_times_s.append(time.perf_counter())
                if piece.output_tokens is not None:
                    record.usage_tokens = piece.output_tokens
                if piece.prompt_tokens is not None:
                    record.prompt_tokens = piece.prompt_tokens
        except Exception as error:  # noqa: BLE001 - every failure is a measurement
            record.error = error_text(error)
        return record


class HttpTarget(Target):
    """A server reached over HTTP: one ``httpx.AsyncClient`` while the target is open.

    Every HTTP target takes ``base_url`` (and ``model`` where the API names one) and the keywords
    ``max_tokens``, ``api_key``, ``timeout_s`` (per request) and ``name`` (for the results).
    Streamed requests go out with ``stream_headers()``: llama-server drops a connection reused
    right after a stream, which would show up here as failed requests.
    """

    #: The name results show when neither a name nor a model is given.
    default_name = "server"

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

    async def post(self, path: str, body: dict) -> dict:
        """A plain request; the answer's JSON."""
        response = await self.client.post(path, json=body)
        await _check(response)
        return response.json()

    async def sse(self, path: str, body: dict) -> AsyncIterator[dict]:
        """A streamed request answered with Server-Sent Events; each event's JSON."""
        async with self.client.stream("POST", path, json=body, headers=stream_headers()) as answer:
            await _check(answer)
            async for chunk in asse_json(answer):
                yield chunk

    async def ndjson(self, path: str, body: dict) -> AsyncIterator[dict]:
        """A streamed request answered with one JSON object a line (Ollama's native API)."""
        async with self.client.stream("POST", path, json=body, headers=stream_headers()) as answer:
            await _check(answer)
            async for chunk in andjson(answer):
                yield chunk


async def _check(response: httpx.Response) -> None:
    if response.is_error:
        await response.aread()
        raise BenchmarkError(f"HTTP {response.status_code}: {error_message(response)}")


class OpenAIChat(HttpTarget):
    """``POST /chat/completions`` under an OpenAI-style ``base_url`` (ending in ``/v1``): vLLM,
    llama-server, the course's service (``llmlab.service``), Ollama's ``/v1``.

    Streamed, it asks for ``stream_options.include_usage`` so tokens are counted by the server,
    not by chunks. ``stream=False`` waits for the whole answer (TTFT = E2E).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        ignore_eos: bool = True,
        stream: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(base_url, model, **options)
        self.ignore_eos = ignore_eos
        self.streams = stream

    async def pieces(self, request: Sequence[Message]) -> AsyncIterator[Piece]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": list(request),
            "temperature": 0,
            "max_tokens": self.max_tokens,
            "ignore_eos": self.ignore_eos,
        }
        if not self.streams:
            answer = await self.post("/chat/completions", body)
            yield _usage_piece(answer.get("usage"), answer["choices"][0]["message"]["content"])
            return
        body |= {"stream": True, "stream_options": {"include_usage": True}}
        async for chunk in self.sse("/chat/completions", body):
            choices = chunk.get("choices") or [{}]
            text = (choices[0].get("delta") or {}).get("content") or ""
            yield _usage_piece(chunk.get("usage"), text)


def _usage_piece(usage: dict | None, text: str | None) -> Piece:
    usage = usage or {}
    return Piece(text or "", usage.get("completion_tokens"), usage.get("prompt_tokens"))


class CourseChat(HttpTarget):
    """``POST /chat`` of the source chapter's service (``llmlab.service.naive``): no streaming,
    and an empty ``usage``. With ``ignore_eos`` every answer is exactly ``max_tokens`` long, so
    that is the count where the server gives none."""

    streams = False
    default_name = "course /chat"

    async def pieces(self, request: Sequence[Message]) -> AsyncIterator[Piece]:
        body = {"messages": list(request), "temperature": 0, "max_tokens": self.max_tokens,
                "ignore_eos": True}  # fmt: skip
        answer = await self.post("/chat", body)
        tokens = (answer.get("usage") or {}).get("completion_tokens", self.max_tokens)
        yield Piece(answer["text"], tokens)


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

    async def prepare(self, messages: Sequence[Message]) -> str:
        return (await self.post("/apply-template", {"messages": list(messages)}))["prompt"]

    async def pieces(self, request: str) -> AsyncIterator[Piece]:
        body = {"prompt": request, "n_predict": self.max_tokens, "temperature": 0,
                "ignore_eos": self.ignore_eos, "stream": True}  # fmt: skip
        async for chunk in self.sse("/completion", body):
            yield Piece(
                chunk.get("content", ""),
                chunk.get("tokens_predicted"),
                chunk.get("tokens_evaluated"),
            )


class OllamaChat(HttpTarget):
    """Ollama's native ``POST /api/chat`` (NDJSON), ``base_url`` like ``http://127.0.0.1:11434``.

    Ollama has no ``ignore_eos``: ``num_predict`` caps the answer but the model may stop
    earlier, so compare its output tokens (``eval_count``) with the other backends'.
    """

    async def pieces(self, request: Sequence[Message]) -> AsyncIterator[Piece]:
        body = {"model": self.model, "messages": list(request), "stream": True,
                "options": {"num_predict": self.max_tokens, "temperature": 0}}  # fmt: skip
        async for chunk in self.ndjson("/api/chat", body):
            text = (chunk.get("message") or {}).get("content", "")
            yield Piece(text, chunk.get("eval_count"), chunk.get("prompt_eval_count"))


class InProcess(Target):
    """A ``LocalLLM`` in this process, streamed (Transformers generates one request at a time).

    The model runs in worker threads, so the event loop stays free to stamp each piece as it
    arrives. Concurrency is 1: ``run`` refuses more rather than measure requests that would only
    queue behind a lock (batching in process is ``llmlab.local.batching``'s job; serving many
    at once, a server's).
    """

    max_concurrency = 1

    def __init__(
        self,
        llm: LocalLLM,
        *,
        max_tokens: int = 64,
        ignore_eos: bool = True,
        name: str = "transformers (in process)",
    ) -> None:
        # Imported here: the HTTP targets above must not load PyTorch; this one has it loaded.
        from llmlab.local.generation import SamplingParams

        self.llm = llm
        self.params = SamplingParams(max_tokens, temperature=0, ignore_eos=ignore_eos)
        self.name = name

    async def pieces(self, request: Sequence[Message]) -> AsyncIterator[Piece]:
        stream = self.llm.chat(request, self.params, stream=True)
        try:
            while (chunk := await asyncio.to_thread(next, stream, None)) is not None:
                usage = chunk.usage  # only in the last chunk
                yield Piece(
                    chunk.text,
                    usage.completion_tokens if usage else None,
                    usage.prompt_tokens if usage else None,
                )
        finally:  # stop the model if the reader gave up (still running if we were cancelled)
            with contextlib.suppress(ValueError):  # "generator already executing"
                await asyncio.to_thread(stream.close)
