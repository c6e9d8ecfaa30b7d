"""Iteration-level scheduling ("continuous batching") for the service, on Transformers' own.

The static engine (``engine.py``) runs a batch until its longest answer is written, then takes
the next: a request that arrives one step after a batch started waits for that whole batch.
Here the batch is rebuilt at every decoding step: a request that arrives joins at the next step
(its prompt is prefilled alongside the others' next tokens) and a finished answer leaves at once,
so nobody waits for somebody else's long answer.

Transformers ships the hard parts as ``ContinuousBatchingManager``: a worker thread, a scheduler
and a paged KV cache (fixed-size blocks handed to requests as they grow, as in vLLM). This module
adapts it to the service's ``InferenceEngine``: requests, streamed text, cancellation, a bounded
queue. Two things the manager decides for a whole batch, not per request:

* **whether it samples.** A greedy request and a sampled one cannot share a batch, and a
  per-request setting (temperature, top-p) costs every row a pass over the vocabulary at every
  step, so each kind of decoding (``Decoding``) gets a manager of its own, started with its
  first request, with only the settings it needs.
* **the random generator.** A request's own seed cannot be honoured in a shared batch, so a
  seeded request runs alone in the static engine, on the same model, as it always did.
"""

from __future__ import annotations

import asyncio
import enum
import uuid

from transformers import GenerationConfig
from transformers.generation.configuration_utils import ContinuousBatchingConfig
from transformers.generation.continuous_batching import ContinuousBatchingManager
from transformers.generation.continuous_batching.requests import GenerationOutput

from llmlab.errors import LLMLabError
from llmlab.local.generation import LocalLLM
from llmlab.local.sampling import FinishReason, SamplingParams, Usage
from llmlab.messages import Message
from llmlab.service.engine import Engine, Finished, QueueFullError, Request, TextDelta, new_text
from llmlab.service.paging import PAGE_TOKENS, STEP_TOKENS, default_cache_tokens


class EngineStoppedError(LLMLabError):
    """The engine takes no more requests: it is stopping, or its scheduler failed."""


class Decoding(enum.Enum):
    """How a request picks its tokens; each kind has a manager of its own."""

    GREEDY = "greedy"
    SAMPLED = "sampled"  # at the request's temperature
    NUCLEUS = "nucleus"  # at its temperature, from its top-p

    @classmethod
    def of(cls, params: SamplingParams) -> Decoding:
        if params.greedy:
            return cls.GREEDY
        return cls.NUCLEUS if params.top_p < 1 else cls.SAMPLED

    def generation_config(self, **token_ids: object) -> GenerationConfig:
        """The manager's config. A per-request setting exists only where the config's value
        differs from "off" (temperature 1, top-p 1), so the defaults here are 0.7 and 0.9; every
        request then sends its own value (``request_settings``)."""
        if self is Decoding.GREEDY:
            return GenerationConfig(do_sample=False, **token_ids)
        top_p = 0.9 if self is Decoding.NUCLEUS else 1.0
        return GenerationConfig(do_sample=True, temperature=0.7, top_p=top_p, **token_ids)

    def request_settings(self, params: SamplingParams) -> dict[str, float]:
        if self is Decoding.GREEDY:
            return {}
        if self is Decoding.SAMPLED:
            return {"temperature": params.temperature}
        return {"temperature": params.temperature, "top_p": params.top_p}


class ContinuousEngine:
    """The service's engine with iteration-level scheduling (see the module's docstring).

    ``max_batch_size`` caps the requests in one step (more wait for a free place);
    ``cache_tokens`` is each manager's paged KV cache, allocated with its first request (by
    default ``paging.default_cache_tokens()``): the requests in a step share it, and one that
    needs more than all of it is refused.
    """

    def __init__(
        self,
        llm: LocalLLM,
        *,
        max_batch_size: int = 16,
        max_queue: int = 64,
        cache_tokens: int | None = None,
    ) -> None:
        self.llm = llm
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self.cache_tokens = cache_tokens or default_cache_tokens()
        self._schedulers: dict[Decoding, ContinuousBatchingManager] = {}
        self._waiting: set[Request] = set()  # submitted, no token yet
        self._writing: set[Request] = set()
        self._seeded: Engine | None = None

    def encode(self, prompt: str | list[Message]) -> list[int]:
        return self.llm.encode(prompt)

    @property
    def queue_depth(self) -> int:
        seeded = self._seeded.queue_depth if self._seeded else 0
        return len(self._waiting) + seeded

    @property
    def running(self) -> int:
        seeded = self._seeded.running if self._seeded else 0
        return len(self._writing) + seeded

    def submit(self, prompt_ids: list[int], params: SamplingParams) -> Request:
        """Hand a request to its scheduler; raises ``QueueFullError`` when ``max_queue``
        requests are waiting for their first token."""
        if params.seed is not None:
            if self._seeded is None:
                self._seeded = Engine(self.llm, max_batch_size=1, max_queue=self.max_queue)
            return self._seeded.submit(prompt_ids, params)
        if len(prompt_ids) + params.max_new_tokens > self.cache_tokens:
            raise ValueError(
                f"{len(prompt_ids)} prompt tokens and {params.max_new_tokens} new ones do not fit "
                f"in the KV cache of {self.cache_tokens} tokens: shorten them, or give the "
                "engine a larger cache_tokens"
            )
        if len(self._waiting) >= self.max_queue:
            raise QueueFullError
        decoding = Decoding.of(params)
        scheduler = self._scheduler(decoding)
        request = Request(prompt_ids, params, asyncio.get_running_loop())
        stream = _Stream(self, scheduler, request)
        # The handler runs on this event loop; registered first, so no output can miss it.
        scheduler.register_result_handler(stream.request_id, stream.receive)
        request.on_cancel = stream.cancel
        self._waiting.add(request)
        accepted = scheduler.add_request(
            prompt_ids,
            request_id=stream.request_id,
            max_new_tokens=params.max_new_tokens,
            streaming=True,
            eos_token_id=-1 if params.ignore_eos else sorted(self.llm.stop_token_ids),
            **decoding.request_settings(params),
        )
        if accepted is None:  # the manager stopped (shutting down, or a fatal error it logged)
            stream.cancel()
            raise EngineStoppedError(f"the {decoding.value} scheduler has stopped; see the log")
        return request

    def stop(self, timeout_s: float = 60) -> None:
        """Finish what is running, then end the worker threads."""
        for scheduler in self._schedulers.values():
            scheduler.stop(block=True, timeout=timeout_s)
        if self._seeded is not None:
            self._seeded.stop(timeout_s)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.stop)

    def _scheduler(self, decoding: Decoding) -> ContinuousBatchingManager:
        """The manager for this kind of decoding, started with its first request."""
        if decoding not in self._schedulers:
            batching = ContinuousBatchingConfig(
                page_size=PAGE_TOKENS,
                num_blocks=-(-self.cache_tokens // PAGE_TOKENS),
                max_batch_tokens=STEP_TOKENS,
                max_requests_per_batch=self.max_batch_size,
                per_request_processors=True,
                allow_block_sharing=False,  # prefix sharing is not supported by every model
            )
            generation = decoding.generation_config(
                eos_token_id=sorted(self.llm.stop_token_ids), pad_token_id=self.llm.pad_token_id
            )
            scheduler = self.llm.model.init_continuous_batching(
                generation_config=generation, continuous_batching_config=batching
            )
            scheduler.start()
            self._schedulers[decoding] = scheduler
        return self._schedulers[decoding]


class _Stream:
    """Turns a manager's outputs for one request (all its tokens so far, each time) into the
    request's text deltas and its ``Finished``; runs on the request's event loop."""

    def __init__(
        self, engine: ContinuousEngine, scheduler: ContinuousBatchingManager, request: Request
    ) -> None:
        self.engine, self.scheduler, self.request = engine, scheduler, request
        self.request_id = uuid.uuid4().hex
        self.sent = ""
        self.done = False

    def receive(self, output: GenerationOutput) -> None:
        if self.done:
            return
        engine, request = self.engine, self.request
        if request in engine._waiting:
            engine._waiting.discard(request)
            engine._writing.add(request)
        tokens = output.generated_tokens
        delta, self.sent = new_text(engine.llm, tokens, self.sent)
        if delta:
            request.publish_here(TextDelta(delta))
        if output.is_finished():
            usage = Usage(len(request.prompt_ids), len(tokens))
            self._end(Finished(usage, self._reason(tokens), output.error))

    def cancel(self) -> None:
        """The client went away (or the answer was read): free the request's row and blocks."""
        if not self.done:
            self.scheduler.cancel_request(self.request_id)
            router = self.scheduler.output_router  # a cancelled request never finishes:
            with router._lock:  # take its handler out, as finishing would
                router.result_handlers.pop(self.request_id, None)
            self._end(None)

    def _end(self, finished: Finished | None) -> None:
        self.done = True
        self.engine._waiting.discard(self.request)
        self.engine._writing.discard(self.request)
        if finished is not None:
            self.request.publish_here(finished)

    def _reason(self, tokens: list[int]) -> FinishReason:
        params = self.request.params
        if tokens and tokens[-1] in self.engine.llm.stop_token_ids and not params.ignore_eos:
            return "stop"
        return "length" if len(tokens) >= params.max_new_tokens else "stop"
