"""Load models on demand, one ``llama-server`` each, and unload them when idle, as Ollama does.

Ollama runs every loaded model in a llama.cpp runner process of its own, starts it on the first
request that names the model, and stops it ``keep_alive`` after the last one (5 minutes unless
a request says otherwise; 0 unloads at once, a negative value never). Here a runner is a real
``llama-server`` started through :func:`llmlab.servers.llamacpp.llama_server`:

* starting one blocks for a second or more, so it runs in a thread and the event loop keeps
  answering other requests; a lock per model makes two requests for it start one server;
* a runner in use is never stopped; a background task stops the idle ones whose time is up;
* embeddings need a llama-server started with ``--embeddings``, which on this build slows text
  generation more than tenfold (measured: 8 instead of 130 tokens/s), so ``/api/embed`` gets a
  runner of its own.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import httpx

from llmlab.ollama.store import StoredModel
from llmlab.servers import Server
from llmlab.servers.llamacpp import llama_server

EMBEDDING_ARGS = ("--embeddings", "--pooling", "mean")
#: A streamed answer may pause while a long prompt is read; a connection may not hang forever.
UPSTREAM_TIMEOUT = httpx.Timeout(600.0, connect=10.0)
#: A new connection per request. Even with ``llmlab.http.common.LIMITS`` (idle connections
#: dropped after 1 s), a reused one now and then met "Server disconnected without sending a
#: response" from llama-server here; a fresh local TCP connection costs well under a millisecond.
UPSTREAM_LIMITS = httpx.Limits(max_keepalive_connections=0)


@dataclass(frozen=True)
class RunnerKey:
    """What makes two requests share a runner: the same model, context size and purpose."""

    name: str
    gguf: str
    num_ctx: int
    embeddings: bool = False


@dataclass
class Runner:
    """One loaded model: its llama-server, an HTTP client for it, and when it may be stopped."""

    key: RunnerKey
    model: StoredModel
    server: Server
    http: httpx.AsyncClient
    keep_alive_s: float
    in_use: int = 0
    idle_since: float = field(default_factory=time.monotonic)

    @property
    def expires_at(self) -> datetime:
        """When it unloads if nothing uses it (``/api/ps`` shows this)."""
        now = datetime.now(timezone.utc)
        if math.isinf(self.keep_alive_s):
            return now.replace(year=now.year + 100)
        started = self.idle_since if not self.in_use else time.monotonic()
        left = started + self.keep_alive_s - time.monotonic()
        return now + timedelta(seconds=left)

    @property
    def expired(self) -> bool:
        return not self.in_use and time.monotonic() >= self.idle_since + self.keep_alive_s


class Runners:
    """The loaded models. ``acquire`` loads one if needed; ``release`` starts its idle clock."""

    def __init__(
        self, *, parallel: int = 1, keep_alive_s: float = 300, threads: int | None = None
    ) -> None:
        self.parallel = parallel
        self.threads = threads
        self.keep_alive_s = keep_alive_s
        self._runners: dict[RunnerKey, Runner] = {}
        self._locks: defaultdict[RunnerKey, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._abandoned: set[asyncio.Task[None]] = set()  # starts whose request went away

    @property
    def loaded(self) -> list[Runner]:
        return list(self._runners.values())

    async def acquire(
        self, model: StoredModel, *, num_ctx: int, embeddings: bool = False
    ) -> tuple[Runner, float]:
        """The runner for ``model`` (started if needed) and the seconds spent getting it."""
        started = time.perf_counter()
        key = RunnerKey(model.name, model.gguf, num_ctx, embeddings)
        async with self._locks[key]:
            runner = self._runners.get(key)
            if runner is not None and not runner.server.running:  # it crashed: start anew
                await _stop(runner)
                runner = None
            if runner is None:
                runner = await self._start(key, model)
            runner.in_use += 1
        return runner, time.perf_counter() - started

    async def release(self, runner: Runner, keep_alive_s: float | None = None) -> None:
        """Done with ``runner``: it stays loaded ``keep_alive_s`` more (0 unloads it now)."""
        runner.in_use -= 1
        runner.idle_since = time.monotonic()
        runner.keep_alive_s = self.keep_alive_s if keep_alive_s is None else keep_alive_s
        if runner.expired:
            await self.unload(runner)

    async def unload(self, runner: Runner) -> None:
        """Stop ``runner`` unless a request took it meanwhile."""
        if runner.in_use or self._runners.get(runner.key) is not runner:
            return
        del self._runners[runner.key]  # no await since the check: no request can slip in
        await _stop(runner)

    async def unload_model(self, name: str) -> None:
        """Unload every runner of the model ``name`` that is not in use."""
        for runner in self.loaded:
            if runner.key.name == name:
                await self.unload(runner)

    async def unload_expired_forever(self, every_s: float = 1.0) -> None:
        """The background task that stops runners whose keep-alive has run out."""
        while True:
            await asyncio.sleep(every_s)
            for runner in self.loaded:
                if runner.expired:
                    await self.unload(runner)

    async def aclose(self) -> None:
        """Stop every runner (the server is shutting down), those still starting included."""
        runners, self._runners = list(self._runners.values()), {}
        await asyncio.gather(*(_stop(runner) for runner in runners), *self._abandoned)

    async def _start(self, key: RunnerKey, model: StoredModel) -> Runner:
        model.require_file()
        server = llama_server(
            model.gguf,
            alias=model.name,
            parallel=self.parallel,
            ctx_per_slot=key.num_ctx,
            threads=self.threads,
            extra_args=EMBEDDING_ARGS if key.embeddings else (),
        )
        starting = asyncio.ensure_future(asyncio.to_thread(server.start))
        try:
            await asyncio.shield(starting)
        except asyncio.CancelledError:
            # The request was cancelled (its client went away, the server is stopping), but
            # the thread goes on starting llama-server: stop it as soon as it is up.
            abandoned = asyncio.ensure_future(_stop_when_started(server, starting))
            self._abandoned.add(abandoned)
            abandoned.add_done_callback(self._abandoned.discard)
            raise
        http = httpx.AsyncClient(
            base_url=server.base_url, timeout=UPSTREAM_TIMEOUT, limits=UPSTREAM_LIMITS
        )
        runner = Runner(key, model, server, http, self.keep_alive_s)
        self._runners[key] = runner
        return runner


async def _stop_when_started(server: Server, starting: asyncio.Future[Server]) -> None:
    await asyncio.wait([starting])
    if not starting.cancelled():
        starting.exception()  # a failed start already stopped itself; mark its error as seen
    await asyncio.to_thread(server.stop)


async def _stop(runner: Runner) -> None:
    await runner.http.aclose()
    await asyncio.to_thread(runner.server.stop)
