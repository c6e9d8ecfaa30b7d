"""Kill a replica under load and measure what the router makes of it.

A closed loop of clients keeps sending chats through the router to its replicas. After
``kill_after_s`` one replica is killed (SIGKILL: a crash, not a clean shutdown), and after
``down_for_s`` it is started again on the same port. Meanwhile the router's own view is polled:
``/workers`` (healthy or not) and its counter of requests sent to each worker.

What a router can and cannot save: a request it sent to the dead replica that had not started
answering is retried on another (``retries``); once the router has passed on the replica's
``200`` and begun to stream (even before the first token), the request cannot be moved and the
client sees it break. Requests sent after the health check has marked the
replica unhealthy no longer go there at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from llmlab.bench import RequestRecord
from llmlab.http.common import LIMITS
from llmlab.prompts import sample_chats
from llmlab.scaleout.load import chat_target
from llmlab.scaleout.replicas import kill
from llmlab.scaleout.router import Router
from llmlab.servers import Server

SENT_TO = "vllm_router_processed_requests_total"


@dataclass
class FailoverReport:
    """What happened. Times are seconds from the kill (the first three) or from the restart
    (the last three)."""

    sent: int
    answered: int
    #: Failed before the answer started (refused, or an error status): a router can save these.
    failed_before_first_byte: int
    #: Failed after the router had answered 200 and begun to stream: nobody can move these.
    failed_mid_stream: int
    #: Attempts the router repeated on another worker (its ``vllm_router_retries_total``).
    retried: int
    #: Until the router's ``/workers`` showed the killed replica unhealthy.
    marked_unhealthy_s: float | None
    #: Until the last time the router picked the killed replica (0: never after the kill). The
    #: circuit breaker lets one request try it every ``breaker_open_s`` until the health check
    #: marks it unhealthy; each such try fails and is retried elsewhere.
    stopped_routing_s: float | None
    #: Until the restarted replica answered its own ``/health``: loading the model.
    restart_s: float | None
    #: Until the router showed the restarted replica healthy again (None: it never showed it
    #: unhealthy, the replica was back before the health check noticed).
    healthy_again_s: float | None
    #: Until the restarted replica began to answer a request again.
    traffic_again_s: float | None
    errors: list[str] = field(default_factory=list, repr=False)

    def row(self) -> dict[str, Any]:
        """The report as one table row (errors left out)."""
        return {k: v for k, v in asdict(self).items() if k != "errors"}


async def failover_experiment(
    router: Router,
    servers: Sequence[Server],
    *,
    victim: int = 0,
    kill_after_s: float = 3,
    down_for_s: float = 4,
    concurrency: int = 4,
    max_tokens: int = 32,
    stream: bool = True,
    recover_timeout_s: float = 30,
) -> FailoverReport:
    """Load ``router`` while ``servers[victim]`` is killed and restarted; see the module's
    docstring. The load stops once the restarted replica has answered a request (or after
    ``recover_timeout_s``). ``servers[victim]`` is running again afterwards."""
    dead = servers[victim]
    answers: list[RequestRecord] = []
    timeline: dict[str, float] = {}
    done = asyncio.Event()
    retries_before = router.retries()
    target = chat_target(router, max_tokens=max_tokens, stream=stream)

    async def client_loop(offset: int) -> None:
        chats = sample_chats(16)
        i = offset
        while not done.is_set():
            answer = await target.send(chats[i % 16])
            answers.append(answer)
            back = answer.model == dead.model and "restart" in timeline
            if back and answer.failure is None and answer.first_byte_s is not None:
                timeline.setdefault("traffic", answer.first_byte_s)
                done.set()
            i += concurrency

    async def chaos() -> None:
        await asyncio.sleep(kill_after_s)
        timeline["kill"] = time.perf_counter()
        kill(dead)
        await asyncio.sleep(down_for_s)
        timeline["restart"] = time.perf_counter()
        await asyncio.to_thread(dead.start)
        timeline["ready"] = time.perf_counter()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(done.wait(), recover_timeout_s)
        done.set()

    async def watch(client: httpx.AsyncClient) -> None:
        last_count = None
        while not done.is_set():
            healthy, count = await _router_view(client, router, dead.base_url)
            now = time.perf_counter()
            if "kill" in timeline:
                if not healthy:
                    timeline.setdefault("unhealthy", now)
                if last_count is not None and count > last_count and "restart" not in timeline:
                    timeline["last_routed"] = now
                if healthy and "restart" in timeline and "unhealthy" in timeline:
                    timeline.setdefault("healthy", now)
            last_count = count
            await asyncio.sleep(0.1)

    async with target, httpx.AsyncClient(timeout=120, limits=LIMITS) as client:
        await asyncio.gather(chaos(), watch(client), *(client_loop(k) for k in range(concurrency)))
    failed = [a for a in answers if a.failure is not None]
    return FailoverReport(
        sent=len(answers),
        answered=len(answers) - len(failed),
        failed_before_first_byte=sum(a.first_byte_s is None for a in failed),
        failed_mid_stream=sum(a.first_byte_s is not None for a in failed),
        retried=router.retries() - retries_before,
        marked_unhealthy_s=_since(timeline, "kill", "unhealthy"),
        stopped_routing_s=_since(timeline, "kill", "last_routed") or 0.0,
        restart_s=_since(timeline, "restart", "ready"),
        healthy_again_s=_since(timeline, "restart", "healthy"),
        traffic_again_s=_since(timeline, "restart", "traffic"),
        errors=[a.failure for a in failed if a.failure is not None],
    )


async def _router_view(client: httpx.AsyncClient, router: Router, url: str) -> tuple[bool, float]:
    workers = (await client.get(router.url("/workers"))).json()["workers"]
    healthy = any(w["url"] == url and w["is_healthy"] for w in workers)
    counters = await asyncio.to_thread(router.counters)
    return healthy, counters.get(SENT_TO, {}).get(url, 0.0)


def _since(timeline: dict[str, float], start: str, end: str) -> float | None:
    if start not in timeline or end not in timeline:
        return None
    return round(timeline[end] - timeline[start], 2)
