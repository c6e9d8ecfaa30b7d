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

from llmlab.bench.http_targets import OpenAIChat
from llmlab.bench.records import BenchmarkResult
from llmlab.bench.runner import default_workload, run
from llmlab.http.common import bearer

VLLM_GENERATION_TOKENS = "vllm:generation_tokens_total"
LLAMACPP_PREDICTED_TOKENS = "llamacpp:tokens_predicted_total"


def read_counter(
    server_url: str,
    name: str = VLLM_GENERATION_TOKENS,
    *,
    api_key: str | None = None,
    timeout_s: float = 10,
) -> float:
    """The value of counter ``name`` at ``{server_url}/metrics``, summed over its labels
    (``server_url`` is the server's root, without ``/v1``)."""
    url = server_url.rstrip("/") + "/metrics"
    response = httpx.get(url, headers=bearer(api_key), timeout=timeout_s)
    response.raise_for_status()
    samples = [
        sample
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]
    values = [sample.value for sample in samples if sample.name == name]
    if not values:
        names = sorted({sample.name for sample in samples if sample.name.endswith("_total")})
        raise ValueError(f"{url} has no counter {name!r}; its counters: {', '.join(names)}")
    return sum(values)


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
    as clients, every answer ``max_tokens`` long (``ignore_eos``).
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
