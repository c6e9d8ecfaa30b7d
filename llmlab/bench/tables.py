"""Put a chat server under load at several concurrency levels: the chapters' short tables.

Every level sends the same kind of work: the sample chats, greedy, each answer forced to exactly
``max_tokens`` tokens with ``ignore_eos`` (vLLM, llama-server and the course's service accept
it). Output tokens/s is all completion tokens over the wall time of the level; latency is per
request, from sending to the whole answer; time to first token (TTFT, streaming only) is from
sending to the first chunk that carries text, as vLLM's serving benchmark defines it.

This is a thin layer over the benchmark harness ``llmlab.bench`` (which sends, times and counts):
a chapter's table is a few of the harness's columns, with its names, units (ms) and
percentiles (p50, p90, p99), so a figure means the same in every chapter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from llmlab import bench
from llmlab.bench import BenchmarkResult, CourseChat, OpenAIChat, Target

#: Makes the target for one server: ``make(base_url, api_key=..., timeout_s=...)``.
MakeTarget = Callable[..., Target]


#: The columns of a chapter's load table, as the harness names them (``BenchmarkResult.row``).
COLUMNS = ("concurrency", "requests", "output tokens/s",
           "E2E p50 (ms)", "E2E p90 (ms)", "E2E p99 (ms)")  # fmt: skip


@dataclass(frozen=True)
class LoadLevel:
    """One concurrency level of a sweep: the harness's result, and whether it streamed."""

    result: BenchmarkResult
    streamed: bool

    @classmethod
    def from_result(cls, result: BenchmarkResult, *, streamed: bool) -> LoadLevel:
        """The level a harness run measured; a failed request fails the level."""
        result.raise_for_failures()
        return cls(result, streamed)

    @property
    def concurrency(self) -> int:
        return self.result.concurrency or 0

    @property
    def output_tokens(self) -> int:
        return self.result.output_tokens

    def row(self) -> dict[str, object]:
        """The figures a chapter's table shows: the harness's own columns, in its units and
        percentiles (TTFT only when the answers streamed: otherwise it is the whole answer)."""
        full = self.result.row()
        columns = (*COLUMNS, "TTFT p50 (ms)") if self.streamed else COLUMNS
        return {name: full[name] for name in columns}


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
    warmup: bool = True,
) -> list[LoadLevel]:
    """Run ``max(min_requests, 2 x concurrency)`` chats at each level (``default_workload``:
    ``$LLMLAB_SWEEP_WAVES`` times the concurrency, 2 unless set), after one warm-up request
    unless ``warmup`` is False."""
    target = send(base_url, api_key=api_key, timeout_s=timeout_s)
    results = await bench.sweep(target, levels, min_requests=min_requests, warmup=warmup)
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
