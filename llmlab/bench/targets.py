"""Targets: what the benchmark sends one request to, and how it reads the answer.

Every target has the same timing loop (``Target.send``), the only one in the course: the clock
starts when the request goes out, the answer's start (its success status) and each chunk that
carries text are stamped as they arrive. Targets differ only in how they build a request and
read a chunk into a ``Piece`` (text, the token counts the server reports, whether the answer is
complete). vLLM's own benchmark copies its timing loop into every backend function, and its
users report wrong TTFT figures from it; here there is one. The chapters' load tables and the
scale-out experiments (``llmlab.scaleout``) send through it too. The servers' APIs are in
``http_targets.py``; this module has the loop, and the model in this process (``InProcess``).

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
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmlab.bench.records import BenchmarkError, RequestRecord
from llmlab.http.streaming import StreamError
from llmlab.local.sampling import SamplingParams
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
