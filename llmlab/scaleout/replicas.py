"""Several copies of one model server, and what each copy did.

A replica is a whole llama-server with the model loaded: two replicas serve twice the requests
at once only where there are cores (or GPUs) for both. Each replica gets its own alias
(``<model>-r0``, ``<model>-r1``, ...): llama-server answers with its alias in the ``model``
field, so every answer says which replica wrote it.

llama-server counts tokens, not requests (``--metrics``: ``llamacpp:tokens_predicted_total``,
``llamacpp:prompt_tokens_total``, ``llamacpp:prompt_tokens_cached_total``, ``n_decode_total``
counts batches). Requests with ``ignore_eos`` and a fixed ``max_tokens`` make the count exact:
requests served = tokens predicted / ``max_tokens``.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmlab.bench.prometheus import read_counter
from llmlab.models import default_gguf
from llmlab.servers import Server
from llmlab.servers.llamacpp import llama_server

PREDICTED = "llamacpp:tokens_predicted_total"
PROMPT = "llamacpp:prompt_tokens_total"
PROMPT_CACHED = "llamacpp:prompt_tokens_cached_total"
COUNTERS = (PREDICTED, PROMPT, PROMPT_CACHED)  # in the order of Work's fields


@contextlib.contextmanager
def replicas(n: int, **llama_server_kwargs: Any) -> Iterator[list[Server]]:
    """Start ``n`` llama-servers (``llama_server``'s keywords, ``threads=1`` unless given) and
    stop every one of them on exit, also when starting one of them or the body fails."""
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    llama_server_kwargs.setdefault("threads", 1)
    gguf = llama_server_kwargs.get("gguf")
    stem = llama_server_kwargs.pop("alias", None) or Path(gguf or default_gguf()).stem
    servers: list[Server] = []
    try:
        for i in range(n):
            servers.append(llama_server(alias=f"{stem}-r{i}", **llama_server_kwargs))
            servers[-1].start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def kill(server: Server) -> None:
    """End ``server`` at once, as a crash would (SIGKILL, no goodbye to open connections).
    ``server.start()`` brings it back on the same port."""
    if server.process is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
    server.stop()  # forget the dead process


@dataclass(frozen=True)
class Work:
    """What a replica's own counters say it did: tokens generated, prompt tokens computed, and
    prompt tokens taken from its cache instead."""

    predicted_tokens: float
    prompt_tokens: float
    cached_prompt_tokens: float

    def __sub__(self, earlier: Work) -> Work:
        return Work(
            self.predicted_tokens - earlier.predicted_tokens,
            self.prompt_tokens - earlier.prompt_tokens,
            self.cached_prompt_tokens - earlier.cached_prompt_tokens,
        )

    def requests(self, max_tokens: int) -> int:
        """Requests served, where every request generated exactly ``max_tokens`` tokens."""
        return round(self.predicted_tokens / max_tokens)


def replica_work(servers: Sequence[Server]) -> list[Work]:
    """Each replica's counters now; subtract an earlier reading to get what a run did."""
    return [
        Work(*(read_counter(s.base_url, name, api_key=s.api_key) for name in COUNTERS))
        for s in servers
    ]
