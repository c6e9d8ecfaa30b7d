"""A few chats sent at the same moment: when each was sent and answered, and how long the
server's ``/health`` kept a prober waiting meanwhile.

One picture tells a server that answers one request at a time (the bars form a staircase and
``/health`` stalls) from one that batches (the bars run side by side). Chapter 06 draws it for
the source chapter's FastAPI server and for the course's service.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx
import matplotlib.pyplot as plt
import pandas as pd

from llmlab.prompts import chat
from llmlab.servers import Server

#: How often the prober asks ``/health`` while the chats run (a load balancer's pace, roughly).
HEALTH_EVERY_S = 0.25


@dataclass(frozen=True)
class Timeline:
    """Per request (the index): ``sent`` and ``answered``, in seconds since the first was sent."""

    requests: pd.DataFrame
    slowest_health_s: float


async def chat_timeline(server: Server, requests: int = 4, max_tokens: int = 48) -> Timeline:
    """Send ``requests`` chats to ``server``'s ``/chat`` at once, each forced to ``max_tokens``
    tokens, and ask ``/health`` every quarter second until the last is answered."""
    body = {
        "messages": chat("Tell me about the sea."),
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
    }
    async with httpx.AsyncClient(
        base_url=server.base_url, headers=server.headers, timeout=300
    ) as client:
        begin = time.perf_counter()
        health_waits: list[float] = []

        async def one(request: int) -> dict[str, float]:
            sent = time.perf_counter() - begin
            (await client.post("/chat", json=body)).raise_for_status()
            return {"request": request, "sent": sent, "answered": time.perf_counter() - begin}

        async def probe_health(until: asyncio.Future) -> None:
            while not until.done():
                asked = time.perf_counter()
                await client.get("/health")
                health_waits.append(time.perf_counter() - asked)
                await asyncio.sleep(HEALTH_EVERY_S)

        work = asyncio.gather(*(one(request) for request in range(requests)))
        prober = asyncio.create_task(probe_health(work))
        rows = await work
        await prober
    return Timeline(pd.DataFrame(rows).set_index("request"), max(health_waits, default=0.0))


def plot_timeline(timeline: Timeline, title: str) -> None:
    """One bar per request, from sending to its answer."""
    frame = timeline.requests
    _, ax = plt.subplots(figsize=(8, 1.8))
    ax.barh(frame.index, frame["answered"] - frame["sent"], left=frame["sent"])
    ax.set(xlabel="seconds since the first request", ylabel="request", title=title)
    ax.set_yticks(frame.index)
    plt.show()
