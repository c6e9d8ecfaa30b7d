"""Targets: what the benchmark sends one request to, and how it reads the answer.

Every target has the same timing loop (``Target.send``), the only one in the course: the clock
starts when the request goes out, the answer's start (its success status) and each chunk that
carries text are stamped as they arrive. Targets differ only in how they build a request and
read a chunk into a ``Piece`` (text, the token counts the server reports, whether the answer is
complete). vLLM's own benchmark copies its timing loop into every backend function, and its
users report wrong TTFT figures from it; here there is one. The chapters' load tables and the
scale-out experiments (``llmlab.scaleout``) send through it too.

Every request is greedy, with a fixed length where the backend can force one (``ignore_eos``:
vLLM, llama-server and the course's service accept it; Ollama cannot), so backends do equal work.
A request that fails (error status, no connection, timeout, an answer cut short or empty) becomes
a record with its error, never an exception: a benchmark counts failures, it does not stop at
the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
    """What one chunk of an answer says: its text, token counts where the server gives them
    (usually only in the last chunk), and whether it ends the answer. An empty ``Piece()`` comes
    first from an HTTP target: the answer has started (its success status arrived)."""

    text: str = ""
    output_tokens: int | None = None
    prompt_tokens: int | None = None
    #: Prompt tokens the server took from its prompt cache (OpenAI's ``cached_tokens``).
    cached_tokens: int | None = None
    #: The model that wrote it, as the answer names it.
    model: str | None = None
    #: The chunk says the answer is complete (a finish reason, Ollama's ``done``, llama.cpp's
    #: ``stop``); a stream that ends without one was cut short.
    done: bool = False


@dataclass(frozen=True)
class Chat:
    """A chat with the HTTP headers its request carries, such as the session id a router
    routes by (``llmlab.scaleout``). A workload may hold these or plain lists of messages."""

    messages: Sequence[Message]
    headers: Mapping[str, str] = field(default_factory=dict)


def unpack(request: Sequence[Message] | Chat) -> tuple[Sequence[Message], dict[str, str]]:
    """A workload item's messages and extra headers."""
    if isinstance(request, Chat):
        return request.messages, dict(request.headers)
    return request, {}


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

    async def prepare(self, chat: Sequence[Message] | Chat) -> Any:
        """Turn a chat into this target's request before the clock starts (default: as is)."""
        return chat

    @abstractmethod
    def pieces(self, request: Any) -> AsyncIterator[Piece]:
        """Send one prepared request and yield what each chunk of the answer says."""

    async def send(self, request: Any) -> RequestRecord:
        """Send one prepared request and record when the answer started and when each piece of
        text arrived."""
        record = RequestRecord(sent_s=time.perf_counter())
        try:
            async for piece in self.pieces(request):
                _add(record, piece, time.perf_counter())
        except Exception as error:  # noqa: BLE001 - every failure is a measurement
            record.error = error_text(error)
        return record


def _add(record: RequestRecord, piece: Piece, now: float) -> None:
    if record.first_byte_s is None:
        record.first_byte_s = now
    if piece.text:
        record.chunk_times_s.append(now)
        record.text += piece.text
    record.usage_tokens = _known(piece.output_tokens, record.usage_tokens)
    record.prompt_tokens = _known(piece.prompt_tokens, record.prompt_tokens)
    record.cached_tokens = _known(piece.cached_tokens, record.cached_tokens)
    record.model = piece.model or record.model
    record.complete = record.complete or piece.done


def _known(new: int | None, old: int | None) -> int | None:
    return old if new is None else new


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

    def pieces(self, request: Sequence[Message] | Chat) -> AsyncIterator[Piece]:
        messages, headers = unpack(request)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "temperature": 0,
            "max_tokens": self.max_tokens,
            "ignore_eos": self.ignore_eos,
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
        from llmlab.local.sampling import SamplingParams

        self.llm = llm
        self.params = SamplingParams(max_tokens, temperature=0, ignore_eos=ignore_eos)
        self.name = name

    async def pieces(self, request: Sequence[Message] | Chat) -> AsyncIterator[Piece]:
        messages, _ = unpack(request)
        stream = self.llm.chat(messages, self.params, stream=True)
        try:
            while (chunk := await asyncio.to_thread(next, stream, None)) is not None:
                usage = chunk.usage  # only in the last chunk
                yield Piece(
                    chunk.text,
                    usage.completion_tokens if usage else None,
                    usage.prompt_tokens if usage else None,
                    done=chunk.finish_reason is not None,
                )
        finally:  # stop the model if the reader gave up (still running if we were cancelled)
            with contextlib.suppress(ValueError):  # "generator already executing"
                await asyncio.to_thread(stream.close)
