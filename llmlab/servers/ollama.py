"""Find a real Ollama, or start the course's Ollama-compatible server as a process.

The chapter prefers the real thing: where ``ollama serve`` answers (a laptop, Colab), it is
used. Elsewhere ``ollama_server()`` starts ``python -m llmlab.ollama`` through
:class:`llmlab.servers.Server`, so it binds 127.0.0.1 on a free port, logs to a file and is
stopped with the notebook, like every other server in the course.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from llmlab.ollama.server import SHUTDOWN_GRACE_S, VERSION_SUFFIX
from llmlab.servers import Server
from llmlab.servers.tree import KILL_TIMEOUT_S
from llmlab.servers.tree import STOP_TIMEOUT_S as RUNNER_STOP_TIMEOUT_S

DEFAULT_HOST = "http://127.0.0.1:11434"
#: Longer than the server's own shutdown (uvicorn's grace for open requests, then its runners'
#: stop, SIGTERM and SIGKILL), so its runners are stopped by their owner, not killed under it.
STOP_TIMEOUT_S = SHUTDOWN_GRACE_S + RUNNER_STOP_TIMEOUT_S + KILL_TIMEOUT_S + 10


def ollama_server(
    port: int | None = None,
    store_dir: str | Path | None = None,
    *,
    keep_alive_s: float = 300,
    parallel: int = 1,
    threads: int | None = None,
    startup_timeout_s: float = 120,
) -> Server:
    """A ``Server`` (not started yet) for the course's Ollama-compatible API.

    ``threads`` per model: on a small machine that is busy with other work, fewer threads than
    cores can be much faster (llama.cpp's threads wait for each other at every step).
    """
    command = [sys.executable, "-m", "llmlab.ollama", "--host", "{host}", "--port", "{port}",
               "--keep-alive", str(keep_alive_s), "--parallel", str(parallel)]  # fmt: skip
    if store_dir is not None:
        command += ["--store", str(store_dir)]
    if threads:
        command += ["--threads", str(threads)]
    return Server(
        command,
        name="llmlab-ollama",
        port=port,
        health_path="/api/version",
        startup_timeout_s=startup_timeout_s,
        stop_timeout_s=STOP_TIMEOUT_S,
    )


def ollama_host(host: str | None = None) -> str:
    """The URL for ``host`` or ``$OLLAMA_HOST`` as Ollama reads it (``0.0.0.0:11434``,
    ``localhost``, ``http://box:8080``...); ``http://127.0.0.1:11434`` when neither is set."""
    text = (host or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST).strip()
    parts = urlsplit(text if "://" in text else f"http://{text}")
    address = parts.hostname or "127.0.0.1"
    address = "127.0.0.1" if address == "0.0.0.0" else address  # listening on all: ask locally
    return f"{parts.scheme}://{address}:{parts.port or 11434}"


def find_ollama(host: str | None = None, timeout_s: float = 2.0) -> str | None:
    """The URL of a running real Ollama (at ``host``, ``$OLLAMA_HOST`` or the default port),
    or None when nothing answers there, or only the course's own server does."""
    url = ollama_host(host)
    try:
        answer = httpx.get(f"{url}/api/version", timeout=timeout_s)
        version = answer.json().get("version", "") if answer.status_code == 200 else ""
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return url if version and not version.endswith(VERSION_SUFFIX) else None
