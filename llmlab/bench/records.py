"""One record per request, and the serving metrics a run's records add up to.

The definitions are those of vLLM's serving benchmark (``vllm bench serve``, the function
``calculate_metrics`` in ``vllm/benchmarks/serve.py``), so a figure here means what the same
name means there (see ``DEFINITIONS``). Other tools use the same words for other things: vLLM's
TPOT is what AIPerf and GuideLLM call ITL, and llmperf's ITL includes the first token.

Everything here is pure arithmetic on recorded times, so it is tested on hand-written records.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from llmlab.errors import LLMLabError

#: The percentiles every latency figure is reported at (numpy.percentile, linear, like vLLM).
PERCENTILES = (50, 90, 99)

#: What each figure means; printed next to every table.
DEFINITIONS = {
    "TTFT": "time to first token: from sending a request to the first streamed chunk that "
    "carries text (queueing, prefill and network included)",
    "TPOT": "time per output token after the first, per request: (E2E - TTFT) / (output tokens "
    "- 1), over requests with more than one token",
    "ITL": "inter-token latency: the gaps between successive text chunks, pooled over all "
    "requests (one chunk can carry several tokens)",
    "E2E": "end-to-end latency: from sending a request to its last text chunk",
    "requests/s": "completed requests / wall time of the run",
    "output tokens/s": "output tokens of the completed requests (as the server's usage reports "
    "them) / wall time of the run",
}


class BenchmarkError(LLMLabError, RuntimeError):
    """A request failed: an error status, a dropped connection, a timeout, an empty answer."""


@dataclass
class RequestRecord:
    """What one request did, as the client saw it. Times are ``time.perf_counter()`` seconds.

    A target fills it while the answer streams in (``Target.send``); the metrics need nothing
    else, and the scale-out experiments read which replica answered and what it had cached.
    """

    sent_s: float
    #: When each streamed chunk that carried text arrived.
    chunk_times_s: list[float] = field(default_factory=list)
    #: When the answer started: its success status arrived (None: it never did). A router
    #: that has passed this on is committed to its worker and can no longer retry elsewhere.
    first_byte_s: float | None = None
    text: str = ""
    #: Output tokens as the server's usage reports them (None: it did not say).
    usage_tokens: int | None = None
    prompt_tokens: int | None = None
    #: Prompt tokens the server took from its prompt cache (None: it did not say).
    cached_tokens: int | None = None
    #: The model the answer names; behind a router, the replica that wrote it.
    model: str | None = None
    #: The answer said it was complete; a stream that ends without saying so was cut short.
    complete: bool = False
    error: str | None = None

    @property
    def failure(self) -> str | None:
        """Why the request counts as failed, or None. An answer cut short fails, and so does
        one without text: it has no time to first token."""
        if self.error is not None:
            return self.error
        if not self.complete:
            return "the answer ended before it was complete"
        if not self.chunk_times_s:
            return "the answer carried no text"
        return None

    @property
    def output_tokens(self) -> int:
        """The server's own count when it gave one, else the chunks (one chunk, one token)."""
        return self.usage_tokens if self.usage_tokens is not None else len(self.chunk_times_s)

    @property
    def ttft_s(self) -> float:
        return self.chunk_times_s[0] - self.sent_s

    @property
    def e2e_s(self) -> float:
        return self.chunk_times_s[-1] - self.sent_s

    @property
    def itls_s(self) -> list[float]:
        times = self.chunk_times_s
        return [later - earlier for earlier, later in zip(times[:-1], times[1:], strict=True)]

    @property
    def tpot_s(self) -> float | None:
        """None for a one-token answer: it has no tokens after the first."""
        tokens = self.output_tokens
        return (self.e2e_s - self.ttft_s) / (tokens - 1) if tokens > 1 else None


@dataclass(frozen=True)
class Stats:
    """Mean and percentiles of one latency measure (NaN where nothing was measured)."""

    mean: float
    p50: float
    p90: float
    p99: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        if not len(values):
            return cls(math.nan, math.nan, math.nan, math.nan)
        return cls(float(np.mean(values)), *(float(p) for p in np.percentile(values, PERCENTILES)))


@dataclass(frozen=True)
class BenchmarkResult:
    """The metrics of one run: one load level (a concurrency, or a request rate) on one target.

    Latencies are in milliseconds, as vLLM reports them; ``row()`` names each unit.
    """

    target: str
    concurrency: int | None
    request_rate: float | None
    duration_s: float
    completed: int
    failed: int
    #: Why each failed request failed, in workload order: counted and listed, never dropped.
    errors: tuple[str, ...]
    input_tokens: int
    output_tokens: int
    request_throughput: float
    output_throughput: float
    ttft_ms: Stats
    tpot_ms: Stats
    itl_ms: Stats
    e2e_ms: Stats
    records: tuple[RequestRecord, ...] = field(default=(), repr=False, compare=False)

    def row(self) -> dict[str, object]:
        """The figures as one flat table row, each column named with its unit."""
        row: dict[str, object] = {
            "target": self.target,
            "concurrency": self.concurrency,
            "request rate (req/s)": self.request_rate,
            "requests": self.completed + self.failed,
            "failed": self.failed,
            "duration (s)": self.duration_s,
            "requests/s": self.request_throughput,
            "output tokens/s": self.output_throughput,
        }
        for name, stats in [("TTFT", self.ttft_ms), ("TPOT", self.tpot_ms),
                            ("ITL", self.itl_ms), ("E2E", self.e2e_ms)]:  # fmt: skip
            row |= {f"{name} {stat} (ms)": value for stat, value in asdict(stats).items()}
        return row

    def to_dict(self, *, records: bool = False) -> dict[str, object]:
        """The result as plain JSON-ready data (NaN as None); ``records`` adds every request."""
        fields = {name: value for name, value in asdict(self).items() if name != "records"}
        data = {key: json_ready(value) for key, value in fields.items()}
        data["errors"] = list(self.errors)
        if records:
            data["records"] = [asdict(record) for record in self.records]
        return data

    def raise_for_failures(self) -> None:
        """Raise ``BenchmarkError`` if any request failed, quoting the first error."""
        if self.failed:
            raise BenchmarkError(
                f"{self.failed} of {self.completed + self.failed} requests to {self.target} "
                f"failed; the first: {self.errors[0]}"
            )


def summarize(
    records: Sequence[RequestRecord],
    duration_s: float,
    *,
    target: str = "",
    concurrency: int | None = None,
    request_rate: float | None = None,
) -> BenchmarkResult:
    """The metrics of a run: ``records`` of its requests and its wall time ``duration_s``.

    Failed requests are counted and their errors kept, but add no latencies or tokens.
    """
    done = [record for record in records if record.failure is None]
    errors = tuple(record.failure for record in records if record.failure is not None)
    output_tokens = sum(record.output_tokens for record in done)
    tpots = [record.tpot_s for record in done if record.tpot_s is not None]
    per_second = 1 / duration_s if duration_s > 0 else math.nan
    return BenchmarkResult(
        target=target,
        concurrency=concurrency,
        request_rate=request_rate,
        duration_s=duration_s,
        completed=len(done),
        failed=len(errors),
        errors=errors,
        input_tokens=sum(record.prompt_tokens or 0 for record in done),
        output_tokens=output_tokens,
        request_throughput=len(done) * per_second,
        output_throughput=output_tokens * per_second,
        ttft_ms=_ms([record.ttft_s for record in done]),
        tpot_ms=_ms(tpots),
        itl_ms=_ms([gap for record in done for gap in record.itls_s]),
        e2e_ms=_ms([record.e2e_s for record in done]),
        records=tuple(records),
    )


def _ms(seconds: list[float]) -> Stats:
    return Stats.of([1000 * value for value in seconds])


def json_ready(value: object) -> object:
    """``value`` with every NaN (in dicts and lists) as None: JSON has no NaN, ``json.dumps``
    writes it anyway, and strict readers reject it."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    return value
