"""Requests on a time line: when each was sent, started to answer, and finished.

Two pictures, both drawn in chapter 06. ``chat_timeline`` sends a few chats at the same moment
and asks ``/health`` meanwhile: it tells a server that answers one request at a time (the bars
form a staircase and ``/health`` stalls) from one that batches (the bars run side by side).
``arrivals_timeline`` sends streamed chats at chosen moments, with chosen lengths: it tells
static batches (a request that arrives while a batch runs waits for the whole batch) from
continuous batching (it joins the running batch at the next step). ``compare_arrivals`` sends
the same Poisson arrivals to several servers and sums each time line up (``timeline_summary``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import matplotlib.pyplot as plt
import pandas as pd
from tqdm.auto import tqdm

from llmlab.bench.http_targets import CourseChat, OpenAIChat
from llmlab.bench.records import BenchmarkError, RequestRecord, summarize
from llmlab.bench.runner import poisson_arrivals
from llmlab.bench.targets import Target
from llmlab.prompts import chat
from llmlab.servers import Server
from llmlab.settings import low_memory

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


async def arrival_records(
    base_url: str,
    model: str,
    arrivals: Sequence[Arrival],
    *,
    api_key: str | None = None,
    **options: Any,
) -> list[RequestRecord]:
    """Send one streamed chat per arrival (``base_url`` ends in ``/v1``), each at its moment
    (``options`` go to ``OpenAIChat``: a server's own way to force the length); the records in
    the order of ``arrivals``. A request that fails raises (``BenchmarkError``)."""
    targets = {
        tokens: OpenAIChat(base_url, model, max_tokens=tokens, api_key=api_key, **options)
        for tokens in {arrival.tokens for arrival in arrivals}
    }
    async with contextlib.AsyncExitStack() as opened:
        for target in targets.values():
            await opened.enter_async_context(target)
        begin = time.perf_counter()
        sends = (_send_at(targets[arrival.tokens], begin, arrival.at_s) for arrival in arrivals)
        return list(await asyncio.gather(*sends))


def timeline_frame(records: Sequence[RequestRecord]) -> pd.DataFrame:
    """Per request: ``sent``, ``first token`` and ``done`` in seconds since the first was sent,
    and ``tokens`` written (the server's count)."""
    begin = min(record.sent_s for record in records)
    rows = [
        {
            "sent": record.sent_s - begin,
            "first token": record.chunk_times_s[0] - begin,
            "done": record.chunk_times_s[-1] - begin,
            "tokens": record.output_tokens,
        }
        for record in records
    ]
    return pd.DataFrame(rows).rename_axis("request")


async def arrivals_timeline(
    base_url: str, model: str, arrivals: Sequence[Arrival], **options: Any
) -> pd.DataFrame:
    """``arrival_records``' requests as a time line (``timeline_frame``)."""
    return timeline_frame(await arrival_records(base_url, model, arrivals, **options))


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


def poisson_timeline_arrivals(count: int, rate: float, tokens: int, seed: int = 0) -> list[Arrival]:
    """``count`` requests of ``tokens`` tokens at Poisson moments, ``rate`` a second on average
    (``poisson_arrivals``: the same ``seed`` gives every server the same moments)."""
    return [Arrival(at_s, tokens) for at_s in poisson_arrivals(count, rate, seed)]


def timeline_summary(records: Sequence[RequestRecord]) -> dict[str, float]:
    """What the requests of a time line come to (``summarize``, the harness's metrics): time to
    first token (median and 90th percentile, ms) and output tokens a second, from the first
    request sent to the last answer done."""
    duration_s = max(r.chunk_times_s[-1] for r in records) - min(r.sent_s for r in records)
    result = summarize(records, duration_s)
    return {
        "TTFT p50 (ms)": result.ttft_ms.p50,
        "TTFT p90 (ms)": result.ttft_ms.p90,
        "output tokens/s": result.output_throughput,
    }


@dataclass(frozen=True)
class ArrivalServer:
    """A server for ``compare_arrivals``: how to start it, and the ``OpenAIChat`` options its
    requests need (a server's own way to force the length)."""

    start: Callable[[], Server]
    options: Mapping[str, Any] = field(default_factory=dict)


async def compare_arrivals(
    servers: Mapping[str, ArrivalServer],
    rates: Sequence[float],
    *,
    requests: int,
    tokens: int = 64,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[float, dict[str, pd.DataFrame]]]:
    """Start each server in turn (alone on the machine) and send it ``requests`` streamed chats
    of ``tokens`` tokens at the Poisson moments of each rate, the same moments for every server.

    Returns the table (per server and rate: ``timeline_summary``) and the time lines, by rate
    and server. Two requests first warm each server up.
    """
    rows: list[dict[str, object]] = []
    timelines: dict[float, dict[str, pd.DataFrame]] = {rate: {} for rate in rates}
    with tqdm(total=len(servers) * len(rates), desc="Arrivals", unit="run") as bar:
        for name, spec in servers.items():
            with spec.start() as server:
                url, model, options = server.url("/v1"), server.model or "", spec.options
                warm_up = [Arrival(0, tokens), Arrival(0, tokens)]
                await arrival_records(url, model, warm_up, **options)
                for rate in rates:
                    moments = poisson_timeline_arrivals(requests, rate, tokens, seed)
                    records = await arrival_records(url, model, moments, **options)
                    timelines[rate][name] = timeline_frame(records)
                    rows.append({"server": name, "requests/s": rate, **timeline_summary(records)})
                    bar.update()
    return pd.DataFrame(rows).set_index(["server", "requests/s"]), timelines


def batching_servers(max_batch_size: int = 64) -> dict[str, ArrivalServer]:
    """Chapter 06's comparison: the course's service with static batches and with continuous
    batching (``--max-batch-size``, by default vLLM's cap as ``vllm_server`` starts it, 64;
    ``transformers serve`` has none), ``transformers serve --continuous-batching`` (the same
    scheduler as the service's, behind Transformers' own HTTP server) and vLLM's OpenAI server
    (``--enforce-eager``: ready in about 35 s on two cores). Not vLLM where memory is short
    (``low_memory``, as on Binder): its three processes alone hold over 3 GB."""
    from llmlab.servers.service import service_server
    from llmlab.servers.transformers_serve import FORCED_LENGTH, transformers_server
    from llmlab.servers.vllm import vllm_server

    batch = ("--max-batch-size", str(max_batch_size))
    servers = {
        "service, static batches": ArrivalServer(
            lambda: service_server("--engine", "static", *batch)
        ),
        "service, continuous": ArrivalServer(
            lambda: service_server("--engine", "continuous", *batch)
        ),
        "transformers serve": ArrivalServer(transformers_server, FORCED_LENGTH),
    }
    if not low_memory():
        servers["vLLM"] = ArrivalServer(lambda: vllm_server(enforce_eager=True))
    return servers
