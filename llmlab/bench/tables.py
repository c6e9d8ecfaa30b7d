"""Put a chat server under load at several concurrency levels: the chapters' short tables.

Every level sends the same kind of work: the sample chats, greedy, each answer forced to exactly
``max_tokens`` tokens with ``ignore_eos`` (vLLM, llama-server and the course's service accept
it). Output tokens/s is all completion tokens over the wall time of the level; latency is per
request, from sending to the whole answer; time to first token (TTFT, streaming only) is from
sending to the first chunk that carries text, as vLLM's serving benchmark defines it.

This is a thin layer over the benchmark harness ``llmlab.bench`` (which sends, times and counts)
that keeps the chapters' table in seconds; the harness reports every metric.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from llmlab import bench
from llmlab.bench import BenchmarkResult, CourseChat, OpenAIChat, Target

#: Makes the target for one server: ``make(base_url, api_key=..., timeout_s=...)``.
MakeTarget = Callable[..., Target]


@dataclass(frozen=True)
class LoadLevel:
    concurrency: int
    requests: int
    seconds: float
    output_tokens: int
    latencies_s: tuple[float, ...]
    ttfts_s: tuple[float, ...] = ()
    #: Every metric of the level, from the harness.
    result: BenchmarkResult | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_result(cls, result: BenchmarkResult, *, streamed: bool) -> LoadLevel:
        """The level a harness run measured; a failed request fails the level."""
        result.raise_for_failures()
        done = [record for record in result.records if record.failure is None]
        return cls(
            concurrency=result.concurrency or 0,
            requests=result.completed,
            seconds=result.duration_s,
            output_tokens=result.output_tokens,
            latencies_s=tuple(record.e2e_s for record in done),
            ttfts_s=tuple(record.ttft_s for record in done) if streamed else (),
            result=result,
        )

    @property
    def tokens_per_second(self) -> float:
        return self.output_tokens / self.seconds

    def row(self) -> dict[str, float]:
        """The figures a table shows, named with their units."""
        p50, p90, p95 = np.percentile(self.latencies_s, [50, 90, 95])  # linear, as vLLM's
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "output tokens/s": self.tokens_per_second,
            "latency p50 (s)": float(p50),
            "latency p90 (s)": float(p90),
            "latency p95 (s)": float(p95),
        } | ({"TTFT p50 (s)": float(np.median(self.ttfts_s))} if self.ttfts_s else {})


def openai_chat(model: str, max_tokens: int = 64) -> MakeTarget:
    """``POST /chat/completions`` under an OpenAI-style base URL (ending in ``/v1``)."""
    return partial(OpenAIChat, model=model, max_tokens=max_tokens, stream=False)


def openai_chat_stream(model: str, max_tokens: int = 64) -> MakeTarget:
    """Like ``openai_chat``, streamed (SSE), timing the first chunk that carries text."""
    return partial(OpenAIChat, model=model, max_tokens=max_tokens)


def course_chat(max_tokens: int = 64) -> MakeTarget:
    """``POST /chat``, the source chapter's endpoint (see ``llmlab.bench.CourseChat``)."""
    return partial(CourseChat, max_tokens=max_tokens)


async def sweep(
    base_url: str,
    send: MakeTarget,
    *,
    api_key: str | None = None,
    levels: Sequence[int] = (1, 4, 16),
    min_requests: int = 8,
    timeout_s: float = 600,
) -> list[LoadLevel]:
    """Run ``max(min_requests, 2 x concurrency)`` chats at each level, after one warm-up."""
    target = send(base_url, api_key=api_key, timeout_s=timeout_s)
    results = await bench.sweep(target, levels, min_requests=min_requests)
    return [LoadLevel.from_result(result, streamed=target.streams) for result in results]


async def sweep_concurrency(
    base_url: str,
    model: str,
    *,
    api_key: str | None = None,
    levels: Sequence[int] = (1, 4, 16),
    max_tokens: int = 64,
) -> list[LoadLevel]:
    """``sweep`` an OpenAI-compatible server (``base_url`` ends in ``/v1``)."""
    return await sweep(base_url, openai_chat(model, max_tokens), api_key=api_key, levels=levels)
