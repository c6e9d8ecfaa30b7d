"""Put an OpenAI-compatible server under load at several concurrency levels and measure it.

Every level sends the same kind of work: the sample chats, each answer forced to exactly
``max_tokens`` tokens with ``ignore_eos`` (vLLM and llama-server both accept it), greedy. Output
tokens/s is all completion tokens over the wall time of the level; latency is per request, from
sending to the whole answer. (Streaming figures such as time to first token come with the
benchmark harness of the exercises.)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm

from llmlab.clients.async_batch import AsyncBatchClient
from llmlab.prompts import sample_chats


@dataclass(frozen=True)
class LoadLevel:
    concurrency: int
    requests: int
    seconds: float
    output_tokens: int
    latencies_s: tuple[float, ...]

    @property
    def tokens_per_second(self) -> float:
        return self.output_tokens / self.seconds

    def row(self) -> dict[str, float]:
        """The figures a table shows, named with their units."""
        deciles = statistics.quantiles(self.latencies_s, n=10)
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "output tokens/s": self.tokens_per_second,
            "latency p50 (s)": statistics.median(self.latencies_s),
            "latency p90 (s)": deciles[-1],
        }


async def sweep_concurrency(
    base_url: str,
    model: str,
    *,
    api_key: str | None = None,
    levels: Sequence[int] = (1, 4, 16),
    max_tokens: int = 64,
    min_requests: int = 8,
    timeout_s: float = 300,
) -> list[LoadLevel]:
    """Run ``max(min_requests, 2 x concurrency)`` chats at each level, after one warm-up."""
    results = []
    async with AsyncBatchClient(base_url, model, api_key=api_key, timeout_s=timeout_s) as client:
        await client.run(sample_chats(2), max_tokens=8, progress=False)
        for concurrency in tqdm(levels, desc="Concurrency levels", unit="level"):
            client.concurrency = concurrency
            workload = sample_chats(max(min_requests, 2 * concurrency))
            started = time.perf_counter()
            answers = await client.run(
                workload, temperature=0, max_tokens=max_tokens, ignore_eos=True, progress=False
            )
            seconds = time.perf_counter() - started
            failed = [answer.error for answer in answers if not answer.ok]
            if failed:
                raise RuntimeError(f"{len(failed)} requests failed, the first: {failed[0]}")
            results.append(
                LoadLevel(
                    concurrency,
                    len(answers),
                    seconds,
                    sum(answer.completion_tokens for answer in answers),
                    tuple(answer.latency_s for answer in answers),
                )
            )
    return results
