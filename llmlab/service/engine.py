"""Serve many requests from one in-process model without blocking the event loop, in static
batches: the service's first engine. ``continuous.py`` replaced it as the service's default
(``--engine static`` still selects it; chapter 06 measures both), and runs seeded requests on it.

The source chapter calls ``llm.generate`` inside ``async def``: the event loop stops for the
whole generation, so requests run one after another and even ``/health`` waits. Here the model
runs in one worker thread, and the event loop only queues requests and relays tokens:

* **Dynamic batching.** The worker takes every queued request with the same sampling settings,
  up to ``max_batch_size``, and generates for them together (left-padded, as in chapter 02),
  so 16 users cost little more per step than one.
* **Per-request streaming.** A Transformers streamer receives each step's new token for every
  row and hands each request its own text as it is written.
* **Backpressure.** The queue is bounded; a full queue refuses at once (the service answers 429
  with ``Retry-After``) instead of letting requests pile up until they time out.
* **Cancellation.** A request whose client went away is marked done; its row stops, and a batch
  whose rows are all done ends early.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from llmlab.errors import LLMLabError
from llmlab.local.batching import LeftPaddingCollator
from llmlab.local.generation import LocalLLM
from llmlab.local.sampling import FinishReason, SamplingParams, Usage
from llmlab.messages import Message

logger = logging.getLogger(__name__)


class QueueFullError(LLMLabError):
    """The engine's queue is full: try again shortly."""


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Finished:
    usage: Usage
    finish_reason: FinishReason
    error: str | None = None  # set when generation itself failed


@dataclass(eq=False)
class Request:
    """One queued generation. Iterate it (async) for ``TextDelta``s, then one ``Finished``."""

    prompt_ids: list[int]
    params: SamplingParams
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    queued_at: float = field(default_factory=time.monotonic)
    #: When the request left for a backend (gateway), and when its first text came back.
    sent_at: float | None = None
    first_token_at: float | None = None
    on_cancel: Callable[[], object] | None = None

    def cancel(self) -> None:
        """Stop generating for this request (its client disconnected, or it is done)."""
        self.cancelled.set()
        if self.on_cancel is not None:
            self.on_cancel()

    def publish(self, event: TextDelta | Finished) -> None:
        """Called from the worker thread: hand an event to the request's event loop."""
        self._stamp(event)
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)

    def publish_here(self, event: TextDelta | Finished) -> None:
        """``publish`` from a task on the request's own event loop (the gateway's relay): the
        event is queued at once, without waking the loop through its self-pipe."""
        self._stamp(event)
        self.events.put_nowait(event)

    def _stamp(self, event: TextDelta | Finished) -> None:
        if self.first_token_at is None and isinstance(event, TextDelta):
            self.first_token_at = time.monotonic()

    async def __aiter__(self) -> AsyncIterator[TextDelta | Finished]:
        while True:
            event = await self.events.get()
            yield event
            if isinstance(event, Finished):
                return

    async def result(self) -> tuple[str, Finished]:
        """Wait for the whole answer."""
        pieces = []
        async for event in self:
            if isinstance(event, TextDelta):
                pieces.append(event.text)
            else:
                return "".join(pieces), event
        raise AssertionError("unreachable")


class InferenceEngine(Protocol):
    """What the app needs from an engine: the in-process ``Engine`` or the gateway's
    ``BackendEngine``, so the endpoints, limits and metrics do not care which one runs."""

    def encode(self, prompt: str | list[Message]) -> list[int]: ...

    @property
    def queue_depth(self) -> int: ...

    @property
    def running(self) -> int: ...

    def submit(self, prompt_ids: list[int], params: SamplingParams) -> Request: ...

    async def aclose(self) -> None: ...


class Engine:
    """A worker thread that runs queued requests in batches on one ``LocalLLM``."""

    def __init__(
        self,
        llm: LocalLLM,
        *,
        max_batch_size: int = 16,
        max_queue: int = 64,
        batch_wait_s: float = 0.02,
    ) -> None:
        self.llm = llm
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_s
        self._queue: queue.Queue[Request] = queue.Queue(maxsize=max_queue)
        self._held: list[Request] = []  # taken from the queue, waiting for a compatible batch
        self._running = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._work, name="llmlab-engine", daemon=True)
        self._thread.start()

    def encode(self, prompt: str | list[Message]) -> list[int]:
        return self.llm.encode(prompt)

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize() + len(self._held)

    @property
    def running(self) -> int:
        return self._running

    def submit(self, prompt_ids: list[int], params: SamplingParams) -> Request:
        """Queue a request; raises ``QueueFullError`` at once when the queue is full."""
        request = Request(prompt_ids, params, asyncio.get_running_loop())
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            raise QueueFullError from None
        return request

    def stop(self, timeout_s: float = 60) -> None:
        """Finish what is queued and running, then end the worker thread."""
        self._stopping.set()
        self._thread.join(timeout_s)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.stop)

    def _work(self) -> None:
        while not (self._stopping.is_set() and self.queue_depth == 0):
            batch = self._next_batch()
            if batch:
                try:
                    self._run(batch)
                except Exception as error:  # keep serving; tell the waiting clients why
                    logger.exception("generation failed")
                    for request in batch:
                        request.publish(
                            Finished(Usage(len(request.prompt_ids), 0), "stop", str(error))
                        )

    def _next_batch(self) -> list[Request]:
        """The oldest request plus every waiting one that can share its batch."""
        if not self._held:
            try:
                self._held.append(self._queue.get(timeout=0.1))
            except queue.Empty:
                return []
            time.sleep(self.batch_wait_s)  # let requests that arrive together batch together
        while True:
            try:
                self._held.append(self._queue.get_nowait())
            except queue.Empty:
                break
        first = self._held[0]
        batch = [r for r in self._held if _batchable(first, r)][: self.max_batch_size]
        self._held = [r for r in self._held if r not in batch]
        return [r for r in batch if not r.cancelled.is_set()]

    def _run(self, batch: list[Request]) -> None:
        self._running = len(batch)
        rows = _Rows(self.llm, batch)
        collate = LeftPaddingCollator(self.llm.pad_token_id)
        inputs = collate([(i, r.prompt_ids) for i, r in enumerate(batch)])
        inputs.pop("index")
        longest = max(r.params.max_new_tokens for r in batch)
        kwargs = self.llm.generation_kwargs(
            inputs, replace(batch[0].params, max_new_tokens=longest)
        )
        try:
            with torch.inference_mode():
                self.llm.model.generate(
                    **kwargs, streamer=rows, stopping_criteria=StoppingCriteriaList([rows])
                )
            rows.finish_all()
        finally:
            self._running = 0


def _batchable(first: Request, other: Request) -> bool:
    """Rows of one batch share sampling settings; a seeded request runs alone."""
    a, b = first.params, other.params
    if a.seed is not None or b.seed is not None:
        return first is other
    return (a.temperature, a.top_p, a.top_k, a.repetition_penalty, a.ignore_eos) == (
        b.temperature, b.top_p, b.top_k, b.repetition_penalty, b.ignore_eos,
    )  # fmt: skip


class _Rows(BaseStreamer, StoppingCriteria):
    """Streamer and stopping rule for one batch: routes each row's tokens to its request."""

    def __init__(self, llm: LocalLLM, batch: list[Request]) -> None:
        self.llm = llm
        self.batch = batch
        self.tokens: list[list[int]] = [[] for _ in batch]
        self.sent: list[str] = ["" for _ in batch]
        self.done = [False for _ in batch]
        self.stop_ids = llm.stop_token_ids
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate() first passes the prompt itself
            self.prompt_seen = True
            return
        for row, token in enumerate(value.reshape(len(self.batch), -1)[:, -1].tolist()):
            if self.done[row]:
                continue
            request = self.batch[row]
            if request.cancelled.is_set():
                self._finish(row, "stop")
                continue
            self.tokens[row].append(token)
            self._send_text(row)
            if token in self.stop_ids:
                self._finish(row, "stop")
            elif len(self.tokens[row]) >= request.params.max_new_tokens:
                self._finish(row, "length")

    def end(self) -> None:
        self.finish_all()

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **_: object):
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)

    def finish_all(self) -> None:
        for row in range(len(self.batch)):
            if not self.done[row]:
                self._finish(row, "stop")

    def _send_text(self, row: int) -> None:
        delta, self.sent[row] = new_text(self.llm, self.tokens[row], self.sent[row])
        if delta:
            self.batch[row].publish(TextDelta(delta))

    def _finish(self, row: int, reason: FinishReason) -> None:
        self.done[row] = True
        request = self.batch[row]
        usage = Usage(len(request.prompt_ids), len(self.tokens[row]))
        request.publish(Finished(usage, reason))


def new_text(llm: LocalLLM, tokens: list[int], sent: str) -> tuple[str, str]:
    """The text ``tokens`` add to what was ``sent`` already, and the text sent after it.

    Decoding the whole answer each time (not token by token) keeps words whole; an answer that
    ends in half of a multi-byte character sends nothing until the rest arrives."""
    text = llm.tokenizer.decode(tokens, skip_special_tokens=True)
    if text.endswith("\ufffd"):
        return "", sent
    return text[len(sent) :], text
