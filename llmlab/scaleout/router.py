"""Start vLLM's router (``pip install vllm-router``) in front of model server replicas.

The router is one more ``Server``: it binds 127.0.0.1, and ``stop`` ends it like any other. It
forwards ``/v1/chat/completions`` (streams pass through) to one of its workers, chosen by a
policy, and keeps checking each worker's ``/health``. What version 0.1.17 does, as tested here:

* ``--api-key`` does not protect the router. Every client gets through; the client's own
  ``Authorization`` header is passed on to the worker, and the worker checks it. To require a
  key, start the replicas with it (``replicas(2, api_key=KEY)``) and give the router the same key.
* ``consistent_hash`` hashes a session header (``X-Session-ID``, then ``X-User-ID``,
  ``X-Tenant-ID``, ``X-Correlation-ID``, ``X-Request-ID``, ``X-Trace-ID``). The ``user`` field of
  a chat request is ignored, and requests without a header all hash alike: one worker gets them.
* The router's own counters are on a second port (``--prometheus-port``, 29000 unless told, so
  two routers would collide); ``/metrics`` on the main port is forwarded to a worker.
* ``/workers`` lists the workers and whether the router thinks each is healthy.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from llmlab.errors import MissingPackageError, ServerStartError
from llmlab.scaleout.launch_router import API_KEY_ENV
from llmlab.servers import LOCALHOST, Server, free_port

#: The policies a router of regular workers can use (``kv_aware`` and ``sticky_least_loaded``
#: need KV-cache events or session bookkeeping that llama-server does not provide).
POLICIES = ("round_robin", "random", "power_of_two", "cache_aware", "consistent_hash")

#: The header ``consistent_hash`` (and ``cache_aware``, when a request has no text) keys on.
SESSION_HEADER = "X-Session-ID"
#: The router's count of requests it sent again to another worker.
RETRIES = "vllm_router_retries_total"


def check_router_installed() -> None:
    """Raise a clear error, with the command that fixes it, when vllm-router is missing."""
    if importlib.util.find_spec("vllm_router") is None:
        raise MissingPackageError(
            "vllm-router", "pip install vllm-router==0.1.17", "Starting vLLM's router (vllm-router)"
        )


class Router(Server):
    """A ``vllm-router`` process: a ``Server`` that also reads the router's own view of its
    workers (``workers``) and its Prometheus counters (``counters``)."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        worker_urls: Sequence[str],
        policy: str,
        metrics_port: int,
        **options: Any,
    ) -> None:
        super().__init__(command, name="vllm-router", health_path="/health", **options)
        self.worker_urls = list(worker_urls)
        self.policy = policy
        self.metrics_port = metrics_port

    @property
    def metrics_url(self) -> str:
        """Where the router's own Prometheus counters are (not its ``/metrics``: a worker's)."""
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def start(self) -> Router:
        """Check every worker answers ``/health`` (the router would wait for it silently), then
        start the router and wait until it answers."""
        for url in self.worker_urls:
            _check_worker(url)
        super().start()
        return self

    def workers(self) -> dict[str, bool]:
        """Each worker's URL, and whether the router counts it as healthy right now."""
        answer = httpx.get(self.url("/workers"), timeout=5)
        answer.raise_for_status()
        return {worker["url"]: worker["is_healthy"] for worker in answer.json()["workers"]}

    def counters(self) -> dict[str, dict[str, float]]:
        """The router's counters by name, each by its ``worker`` (or ``route``) label, e.g.
        ``counters()["vllm_router_processed_requests_total"]["http://127.0.0.1:8081"]``.
        A counter appears once it has counted something."""
        answer = httpx.get(self.metrics_url, timeout=5)
        answer.raise_for_status()
        counters: dict[str, dict[str, float]] = {}
        for family in text_string_to_metric_families(answer.text):
            for sample in family.samples:
                label = sample.labels.get("worker") or sample.labels.get("route") or ""
                by_label = counters.setdefault(sample.name, {})
                by_label[label] = by_label.get(label, 0.0) + sample.value
        return counters

    def retries(self) -> int:
        """Requests the router has sent again to another worker, over all workers."""
        return round(sum(self.counters().get(RETRIES, {}).values()))


def vllm_router(
    worker_urls: Sequence[str],
    *,
    policy: str = "round_robin",
    model: str | None = None,
    api_key: str | None = None,
    host: str = LOCALHOST,
    port: int | None = None,
    health_check_interval_s: int = 1,
    retries: int = 5,
    breaker_failures: int = 2,
    breaker_open_s: int = 2,
    extra_args: Sequence[str] = (),
    startup_timeout_s: float = 60,
) -> Router:
    """A ``Router`` in front of ``worker_urls`` (model servers' roots, without ``/v1``).

    The defaults suit a notebook and differ from the router's own where those would hide what
    the chapter shows:

    * a health check every second (the router's default is 60 s; a worker counts as unhealthy
      after 3 failed checks, healthy again after 2 good ones);
    * ``retries`` attempts per request, so a request sent to a worker that just died goes to
      another one (with round-robin, several attempts of one request can land on the dead one);
    * a circuit breaker per worker that opens after ``breaker_failures`` failed requests (the
      router's default: 10), so the dead worker is skipped before the health check notices, and
      lets a request try again after ``breaker_open_s`` (default 60 s: a restarted worker would
      wait that long for traffic, however healthy).
    ``model`` is the name clients ask for (``router.model``); ``api_key`` is the key they send
    (``router.headers``), which the workers must check.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown routing policy {policy!r}; choose one of {', '.join(POLICIES)}")
    if not worker_urls:
        raise ValueError("the router needs at least one worker URL")
    if min(health_check_interval_s, retries, breaker_failures, breaker_open_s) < 1:
        raise ValueError(
            "health_check_interval_s, retries, breaker_failures and breaker_open_s must be >= 1"
        )
    check_router_installed()
    metrics_port = free_port(host)
    command = [
        sys.executable, "-m", "llmlab.scaleout.launch_router",  # vllm-router, key from env
        "--host", "{host}",
        "--port", "{port}",
        "--worker-urls", *[url.rstrip("/") for url in worker_urls],
        "--policy", policy,
        "--prometheus-host", host,
        "--prometheus-port", str(metrics_port),
        "--health-check-interval-secs", str(health_check_interval_s),
        "--health-check-timeout-secs", str(health_check_interval_s),
        "--retry-max-retries", str(retries),
        "--cb-failure-threshold", str(breaker_failures),
        "--cb-timeout-duration-secs", str(breaker_open_s),
        "--worker-startup-timeout-secs", str(int(startup_timeout_s)),
        "--worker-startup-check-interval", "1",
    ]  # fmt: skip
    command += list(extra_args)
    return Router(
        command,
        worker_urls=[url.rstrip("/") for url in worker_urls],
        policy=policy,
        metrics_port=metrics_port,
        model=model,
        host=host,
        port=port,
        api_key=api_key,
        env={API_KEY_ENV: api_key} if api_key else {},
        startup_timeout_s=startup_timeout_s,
    )


def _check_worker(url: str) -> None:
    try:
        status = httpx.get(url.rstrip("/") + "/health", timeout=5).status_code
    except httpx.TransportError as error:
        raise ServerStartError(
            f"The router's worker {url} does not answer ({type(error).__name__}). Start it "
            f"first (llama_server(...).start() or replicas(n)), or remove it from worker_urls."
        ) from error
    if status != 200:
        raise ServerStartError(f"The router's worker {url} answers /health with HTTP {status}.")
