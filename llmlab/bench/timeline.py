"""Requests on a time line: when each was sent, started to answer, and finished.

Two pictures, both drawn in chapter 06. ``chat_timeline`` sends a few chats at the same moment
and asks ``/health`` meanwhile: it tells a server that answers one request at a time (the bars
form a staircase and ``/health`` stalls) from one that batches (the bars run side by side).
``arrivals_timeline`` sends streamed chats at chosen moments, with chosen lengths: it tells
static batches (a request that arrives while a batch runs waits for the whole batch) from
continuous batching (it joins the running batch at the next step).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import matplotlib.pyplot as plt
import pandas as pd

from llmlab.bench.http_targets import CourseChat, OpenAIChat
from llmlab.bench.records import BenchmarkError, RequestRecord
from llmlab.bench.targets import Target
from llmlab.prompts import chat
from llmlab.servers import Server

#: How often the prober asks ``/health`` while the chats run (a load balancer's pace, roughly).
HEALTH_EVERY_S = 0.25
#: The chat every request sends: long answers, forced to their length with ``ignore_eos``.
PROMPT = chat("Tell me about the sea.")


async def _send_at(target: Target, begin: float, at_s: float) -> RequestRecord:
    """Send ``PROMPT`` through the course's one timing loop (``Target.send``) ``at_s`` seconds
    after ``begin``. A request that fails raises: a time line with a hole would mislead."""
    await asyncio.sleep(max(0.0, begin + at_s - time.perf_counter()))
    record = await target.send(await target.prepare(PROMPT))
    if record.failure:
        raise BenchmarkError(f"the request sent at {at_s} s: {record.failure}")
    return record


@dataclass(frozen=True)
class Timeline:
    """Per request (the index): ``sent`` and ``answered``, in seconds since the first was sent."""

    requests: pd.DataFrame
    slowest_health_s: float


async def chat_timeline(server: Server, requests: int = 4, max_tokens: int = 48) -> Timeline:
    """Send ``requests`` chats to ``server``'s ``/chat`` at once, each forced to ``max_tokens``
    tokens, and ask ``/health`` every quarter second until the last is answered."""
    target = CourseChat(server.base_url, max_tokens=max_tokens, api_key=server.api_key)
    async with target, httpx.AsyncClient(base_url=server.base_url, timeout=300) as prober:
        begin = time.perf_counter()
        health_waits: list[float] = []

        async def probe_health(until: asyncio.Future) -> None:
            while not until.done():
                asked = time.perf_counter()
                await prober.get("/health")
                health_waits.append(time.perf_counter() - asked)
                await asyncio.sleep(HEALTH_EVERY_S)

        work = asyncio.gather(*(_send_at(target, begin, 0) for _ in range(requests)))
        probing = asyncio.create_task(probe_health(work))
        records = await work
        await probing
    rows = [
        {"sent": record.sent_s - begin, "answered": record.chunk_times_s[-1] - begin}
        for record in records
    ]
    return Timeline(pd.DataFrame(rows).rename_axis("request"), max(health_waits, default=0.0))


def plot_timeline(timeline: Timeline, title: str) -> None:
    """One bar per request, from sending to its answer."""
    frame = timeline.requests
    _, ax = plt.subplots(figsize=(8, 1.8))
    ax.barh(frame.index, frame["answered"] - frame["sent"], left=frame["sent"])
    ax.set(xlabel="seconds since the first request", ylabel="request", title=title)
    ax.set_yticks(frame.index)
    plt.show()


@dataclass(frozen=True)
class Arrival:
    """A request sent ``at_s`` seconds after the first, asking for exactly ``tokens`` tokens."""

    at_s: float
    tokens: int


async def arrivals_timeline(
    base_url: str, model: str, arrivals: Sequence[Arrival], *, api_key: str | None = None
) -> pd.DataFrame:
    """Send one streamed chat per arrival (``base_url`` ends in ``/v1``), each at its moment.

    Returns, per request: ``sent``, ``first token`` and ``done`` in seconds since the first was
    sent, and ``tokens``. A request that fails raises (``BenchmarkError``).
    """
    targets = {
        tokens: OpenAIChat(base_url, model, max_tokens=tokens, api_key=api_key)
        for tokens in {arrival.tokens for arrival in arrivals}
    }
    async with contextlib.AsyncExitStack() as opened:
        for target in targets.values():
            await opened.enter_async_context(target)
        begin = time.perf_counter()

        async def one(arrival: Arrival) -> dict[str, float]:
            record = await _send_at(targets[arrival.tokens], begin, arrival.at_s)
            return {
                "sent": record.sent_s - begin,
                "first token": record.chunk_times_s[0] - begin,
                "done": record.chunk_times_s[-1] - begin,
                "tokens": arrival.tokens,
            }

        rows = await asyncio.gather(*(one(arrival) for arrival in arrivals))
    return pd.DataFrame(rows).rename_axis("request")


def plot_arrivals(timelines: dict[str, pd.DataFrame], title: str) -> None:
    """One panel per server: per request, the wait for its first token (light) and the time
    it spent generating (dark), on the same time axis."""
    _, axes = plt.subplots(1, len(timelines), figsize=(5 * len(timelines), 2.6), sharex=True)
    for ax, (name, frame) in zip(axes, timelines.items(), strict=True):
        waiting = frame["first token"] - frame["sent"]
        ax.barh(frame.index, waiting, left=frame["sent"], color="lightgray", label="waiting")
        generating = frame["done"] - frame["first token"]
        ax.barh(frame.index, generating, left=frame["first token"], color="tab:blue",
                label="generating")  # fmt: skip
        ax.set(title=name, xlabel="seconds since the first request", ylabel="request")
        ax.set_yticks(frame.index)
        ax.invert_yaxis()
    axes[0].legend(loc="lower right")
    plt.suptitle(title)
    plt.tight_layout()
    plt.show()
