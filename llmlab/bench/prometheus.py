"""Read a server's own counters, to check the client's figures against the server's.

vLLM counts the tokens it generated in ``vllm:generation_tokens_total``, llama-server (with
``--metrics``) in ``llamacpp:tokens_predicted_total``. Read the counter before and after a run:
the difference is what the server says it did, next to what the benchmark counted
(``sweep_against_counter``, which exercise 2's load test uses).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from llmlab.bench.http_targets import OpenAIChat
from llmlab.bench.records import BenchmarkResult
from llmlab.bench.runner import default_workload, run
from llmlab.http.common import bearer

VLLM_GENERATION_TOKENS = "vllm:generation_tokens_total"
LLAMACPP_PREDICTED_TOKENS = "llamacpp:tokens_predicted_total"


def _samples(server_url: str, api_key: str | None, timeout_s: float) -> tuple[str, list[Sample]]:
    """Every sample at ``{server_url}/metrics``, and that URL (for error messages)."""
    url = server_url.rstrip("/") + "/metrics"
    response = httpx.get(url, headers=bearer(api_key), timeout=timeout_s)
    response.raise_for_status()
    families = text_string_to_metric_families(response.text)
    return url, [sample for family in families for sample in family.samples]


def read_counter(
    server_url: str,
    name: str = VLLM_GENERATION_TOKENS,
    *,
    api_key: str | None = None,
    timeout_s: float = 10,
) -> float:
    """The value of counter ``name`` at ``{server_url}/metrics``, summed over its labels
    (``server_url`` is the server's root, without ``/v1``)."""
    url, samples = _samples(server_url, api_key, timeout_s)
    values = [sample.value for sample in samples if sample.name == name]
    if not values:
        names = sorted({sample.name for sample in samples if sample.name.endswith("_total")})
        raise ValueError(f"{url} has no counter {name!r}; its counters: {', '.join(names)}")
    return sum(values)


def read_info(
    server_url: str, name: str, *, api_key: str | None = None, timeout_s: float = 10
) -> dict[str, str]:
    """The labels of the info metric ``name`` (a gauge fixed at 1 whose labels carry a
    configuration: vLLM's ``vllm:cache_config_info`` holds its ``block_size``, for one)."""
    url, samples = _samples(server_url, api_key, timeout_s)
    for sample in samples:
        if sample.name == name:
            return dict(sample.labels)
    infos = sorted({sample.name for sample in samples if sample.name.endswith("_info")})
    raise ValueError(f"{url} has no metric {name!r}; its info metrics: {', '.join(infos)}")


@dataclass(frozen=True)
class HistogramTotals:
    """A labelled histogram's running totals: per label value, the sum of the observations and
    their count. Read it before and after a run; the difference is that run's."""

    sums: dict[str, float]
    counts: dict[str, float]

    def __sub__(self, earlier: HistogramTotals) -> HistogramTotals:
        return HistogramTotals(
            {key: value - earlier.sums.get(key, 0.0) for key, value in self.sums.items()},
            {key: value - earlier.counts.get(key, 0.0) for key, value in self.counts.items()},
        )

    def means(self) -> dict[str, float]:
        """The mean observation per label value (those observed at least once)."""
        return {key: self.sums[key] / count for key, count in self.counts.items() if count}


def read_histogram(
    server_url: str, name: str, label: str, *, api_key: str | None = None, timeout_s: float = 10
) -> HistogramTotals:
    """Histogram ``name``'s ``_sum`` and ``_count`` at ``{server_url}/metrics``, by ``label``."""
    url, samples = _samples(server_url, api_key, timeout_s)
    sums = {s.labels[label]: s.value for s in samples if s.name == f"{name}_sum"}
    counts = {s.labels[label]: s.value for s in samples if s.name == f"{name}_count"}
    if not counts:
        raise ValueError(f"{url} has no histogram {name!r} with a {label!r} label")
    return HistogramTotals(sums, counts)


@dataclass(frozen=True)
class Agreement:
    """One load level as the client measured it and as the server counted it."""

    result: BenchmarkResult
    #: The server's counter after the run minus before it.
    server_tokens: float

    @property
    def server_throughput(self) -> float:
        """The server's count over the run's wall time."""
        return self.server_tokens / self.result.duration_s

    @property
    def ratio(self) -> float:
        """The harness's output tokens/s over the server's: 1.0 when both agree."""
        return self.result.output_throughput / self.server_throughput

    def row(self) -> dict[str, object]:
        return {
            "concurrency": self.result.concurrency,
            "harness tokens": self.result.output_tokens,
            "/metrics tokens": int(self.server_tokens),
            "harness tok/s": round(self.result.output_throughput, 1),
            "/metrics tok/s": round(self.server_throughput, 1),
            "ratio": round(self.ratio, 3),
        }


async def sweep_against_counter(
    base_url: str,
    model: str,
    levels: Sequence[int],
    *,
    api_key: str | None = None,
    max_tokens: int = 64,
    counter: str = VLLM_GENERATION_TOKENS,
    progress: bool = True,
) -> list[Agreement]:
    """Load the OpenAI-compatible server at ``base_url`` (its root, without ``/v1``) at each
    concurrency in turn, reading its ``counter`` before and after each level.

    One warm-up request goes first, outside any level, so each counter difference holds only
    that level's requests. Each level sends ``default_workload(level)``: twice as many chats
    as clients (``$LLMLAB_SWEEP_WAVES`` times), at least 8, every answer ``max_tokens`` long
    (``ignore_eos``).
    """
    target = OpenAIChat(f"{base_url}/v1", model, max_tokens=max_tokens, api_key=api_key)

    async def count() -> float:
        return await asyncio.to_thread(read_counter, base_url, counter, api_key=api_key)

    agreements = []
    async with target:
        warmup = await target.send(default_workload(1)[0])
        if warmup.failure:
            raise RuntimeError(f"the warm-up request to {base_url} failed: {warmup.failure}")
        for level in levels:
            before = await count()
            result = await run(
                target, default_workload(level), concurrency=level, warmup=False, progress=progress
            )
            agreements.append(Agreement(result, await count() - before))
    return agreements
