"""Run a fixed workload against a target at a fixed load, and measure it.

Two ways to load a server, as vLLM's serving benchmark has them:

* a fixed concurrency: that many requests in flight at all times (a closed loop: the next
  request waits for a free slot), which finds the throughput a server can sustain;
* a request rate: requests arrive as a Poisson process (exponential gaps, seeded, so a run can
  be repeated), optionally capped by a concurrency; this is how users arrive, and it shows how
  latency grows when arrivals outpace the server.

One warm-up request goes first and is not counted (the first request pays for lazy loading and
caches). The load generator is one asyncio process: on a 2-core machine it still competes with
the server for CPU, so keep it light and say so next to the figures.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

from tqdm.auto import tqdm

from llmlab.bench.records import BenchmarkResult, RequestRecord, summarize
from llmlab.bench.targets import Chat, Target, error_text
from llmlab.messages import Message
from llmlab.prompts import sample_chats
from llmlab.settings import sweep_waves

#: The chats a run sends, in order: message lists, or ``Chat``s that carry their own headers.
Workload = Sequence[Sequence[Message] | Chat]


def default_workload(concurrency: int, minimum: int = 8) -> list[list[Message]]:
    """The course's sample chats: ``sweep_waves()`` (2) times the concurrency, so every slot
    refills once, and at least ``minimum``."""
    return sample_chats(max(minimum, sweep_waves() * concurrency))


def poisson_arrivals(count: int, rate: float, seed: int = 0) -> list[float]:
    """When each of ``count`` requests is sent, in seconds from the start: the first at once,
    then gaps drawn from an exponential distribution with mean ``1 / rate``."""
    if rate <= 0:
        raise ValueError(f"the request rate must be positive, not {rate}")
    rng = random.Random(seed)
    times, now = [], 0.0
    for _ in range(count):
        times.append(now)
        now += rng.expovariate(rate)
    return times


async def run(
    target: Target,
    workload: Workload | None = None,
    *,
    concurrency: int | None = None,
    request_rate: float | None = None,
    seed: int = 0,
    warmup: bool = True,
    progress: bool = True,
) -> BenchmarkResult:
    """Send every chat of ``workload`` to ``target`` and return the run's metrics.

    Give ``concurrency`` (requests in flight), ``request_rate`` (Poisson arrivals per second,
    capped by ``concurrency`` if both are given), or neither (one request at a time). The
    default workload is ``default_workload(concurrency)``.
    """
    if concurrency is None and request_rate is None:
        concurrency = 1
    if concurrency is not None and concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    limit = target.max_concurrency
    if limit is not None and (concurrency is None or concurrency > limit):
        raise ValueError(
            f"{target.name} takes {limit} request(s) at a time; pass concurrency={limit}, "
            "or serve the model (vLLM, llama-server, llmlab.service) to load it harder"
        )
    chats = list(workload) if workload is not None else default_workload(concurrency or 1)
    if not chats:
        raise ValueError("the workload is empty")
    if request_rate is not None:
        arrivals = poisson_arrivals(len(chats), request_rate, seed)
    else:
        arrivals = [0.0] * len(chats)
    slots = asyncio.Semaphore(concurrency) if concurrency else nullcontext()
    load = f"{concurrency} in flight" if request_rate is None else f"{request_rate:g} req/s"

    async with target:
        requests = [await _prepare(target, chat) for chat in chats]
        if warmup and not isinstance(requests[0], _Unprepared):
            await target.send(requests[0])
        bar = tqdm(
            total=len(chats), desc=f"{target.name}, {load}", unit="req", disable=not progress
        )
        started = time.perf_counter()

        async def one(request: Any, arrival: float) -> RequestRecord:
            await asyncio.sleep(started + arrival - time.perf_counter())
            async with slots:
                if isinstance(request, _Unprepared):
                    record = RequestRecord(time.perf_counter(), error=request.error)
                else:
                    record = await target.send(request)
            bar.update()
            return record

        records = await asyncio.gather(*map(one, requests, arrivals))
        duration = time.perf_counter() - started
        bar.close()
    return summarize(
        records, duration, target=target.name, concurrency=concurrency, request_rate=request_rate
    )


async def sweep(
    target: Target,
    levels: Sequence[int] = (1, 4, 16),
    *,
    workload: Workload | None = None,
    min_requests: int = 8,
    warmup: bool = True,
    progress: bool = True,
) -> list[BenchmarkResult]:
    """``run`` at each concurrency in ``levels``, warming up once before the first (unless
    ``warmup`` is False: the server is warm already, and its counters see only the levels).

    Each level sends ``workload``, or ``default_workload(level, min_requests)`` without one.
    """
    results = []
    async with target:
        for i, level in enumerate(levels):
            chats = workload if workload is not None else default_workload(level, min_requests)
            first = warmup and i == 0
            result = await run(target, chats, concurrency=level, warmup=first, progress=progress)
            results.append(result)
    return results


class _Unprepared:
    """A chat the target could not turn into a request: it fails without being sent."""

    def __init__(self, error: str) -> None:
        self.error = error


async def _prepare(target: Target, chat: Sequence[Message] | Chat) -> Any:
    try:
        return await target.prepare(chat)
    except Exception as error:  # noqa: BLE001 - a failed request is a measurement
        return _Unprepared(error_text(error))
