"""Start a model server as a child process, wait until it answers, and always stop it.

Every chapter that runs a server (vLLM, llama-server, the course's FastAPI service) goes through
``Server``, so each one behaves the same way:

* it binds 127.0.0.1 unless told otherwise, on a free port unless one is given;
* ``start`` waits for the health endpoint with a progress bar and a timeout, and if the server
  dies or never answers, the error shows the end of its log;
* the log goes to a file in the cache folder that the student can open;
* ``stop`` ends the whole process tree (vLLM starts worker processes of its own, the
  Ollama-compatible server one llama-server per model) on ``with`` exit, on error, and when the
  Python process exits;
* a reaper process (:mod:`llmlab.servers.reaper`) stops it when the owner dies without exiting
  cleanly (a killed kernel, a test run ended by SIGTERM), so no server outlives the notebook or test
  that started it.
"""

from __future__ import annotations

import atexit
import math
import os
import re
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx
from tqdm.auto import tqdm

from llmlab.errors import PortInUseError, ServerStartError
from llmlab.http.common import bearer
from llmlab.logs import log_dir
from llmlab.servers import reaper
from llmlab.servers.tree import STOP_TIMEOUT_S, stop_tree

LOCALHOST = "127.0.0.1"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")  # colours in logs written for a terminal


def free_port(host: str = LOCALHOST) -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def port_in_use(port: int, host: str = LOCALHOST) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((host, port)) == 0


class Server:
    """A server process. ``command`` may contain ``{host}`` and ``{port}``, filled in on start.

    >>> with Server(["python", "-m", "http.server", "--bind", "{host}", "{port}"],
    ...             name="files", health_path="/") as server:
    ...     httpx.get(server.url("/"))
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        name: str,
        model: str | None = None,
        host: str = LOCALHOST,
        port: int | None = None,
        health_path: str = "/health",
        api_key: str | None = None,
        env: Mapping[str, str] | None = None,
        startup_timeout_s: float = 300,
        stop_timeout_s: float = STOP_TIMEOUT_S,
    ) -> None:
        self.name = name
        self.model = model  # the model name clients ask for, where the server serves one
        self.host = host
        self.port = port
        self.health_path = health_path
        self.api_key = api_key
        self.env = dict(env or {})
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._template = list(command)
        self.command: list[str] = []
        self.log_path: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Server {self.name} {state} at {self.base_url if self.port else '?'}>"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "") -> str:
        return self.base_url + path

    @property
    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header the server's API key asks for (empty without a key)."""
        return bearer(self.api_key)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def started_process(self) -> subprocess.Popen[bytes]:
        """``process``, for code that runs after ``start`` (an error before it)."""
        if self.process is None:
            raise RuntimeError(f"{self.name} has not been started: call start() first")
        return self.process

    def start(self) -> Server:
        """Start the process and block until its health endpoint answers 200."""
        if self.running:
            return self
        if self.port is None:
            self.port = free_port(self.host)
        elif port_in_use(self.port, self.host):
            raise PortInUseError(
                f"Port {self.port} on {self.host} is already in use, perhaps by a server from an "
                f"earlier run. Stop it, or leave the port unset to get a free one."
            )
        self.command = [part.format(host=self.host, port=self.port) for part in self._template]
        self.log_path = log_dir() / f"{self.name}-{self.port}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=os.environ | self.env,
                start_new_session=True,  # its own process group: stop() ends its workers too
            )
        atexit.register(self.stop)
        reaper.watch(self.process.pid)
        try:
            self._wait_until_healthy()
        except ServerStartError as error:
            error.returncode = self.process.poll()
            self.stop()
            raise
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout_s: float | None = None) -> None:
        """Ask the process tree to exit (SIGTERM), then force it (SIGKILL) after ``timeout_s``
        (default: ``stop_timeout_s``). The server keeps its process, its atexit hook and its
        place in the reaper's list until the tree is stopped, so a stop interrupted by Ctrl-C
        can be called again and is still done at exit."""
        process = self.process
        if process is None:
            return
        stop_tree(process.pid, timeout_s=timeout_s or self.stop_timeout_s, popen=process)
        self.process = None
        atexit.unregister(self.stop)
        reaper.forget(process.pid)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's log: where a failed start explains itself."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = ANSI_ESCAPE.sub("", self.log_path.read_text(errors="replace"))
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wait_until_healthy(self) -> None:
        started = time.monotonic()
        with (
            tqdm(
                total=int(self.startup_timeout_s),
                desc=f"Starting {self.name}",
                unit="s",
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} s{postfix}",
            ) as bar,
            httpx.Client(timeout=2) as client,
        ):
            while True:
                elapsed = time.monotonic() - started
                bar.update(int(elapsed) - bar.n)
                code = self.started_process.poll()
                if code is not None:
                    raise ServerStartError(
                        f"{self.name} exited with code {code} before it was "
                        f"ready. The end of its log ({self.log_path}):\n{self.log_tail()}"
                    )
                if elapsed > self.startup_timeout_s:
                    raise ServerStartError(
                        f"{self.name} did not answer {self.health_path} within "
                        f"{self.startup_timeout_s:.0f} s. The end of its log ({self.log_path}):\n"
                        f"{self.log_tail()}"
                    )
                try:
                    if client.get(self.url(self.health_path)).status_code == 200:
                        # End full: the wait is over (the total was only the time limit).
                        bar.reset(total=max(1, math.ceil(elapsed)))
                        bar.update(bar.total)
                        bar.set_postfix_str(f"ready after {elapsed:.0f} s")
                        return
                except httpx.TransportError:
                    pass  # not listening yet
                last_line = self.log_tail(1)[-60:]
                if last_line:
                    bar.set_postfix_str(last_line, refresh=False)
                time.sleep(0.5)
