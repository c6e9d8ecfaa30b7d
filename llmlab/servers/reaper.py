"""A watchdog process that stops the course's servers when the process that started them dies.

``Server.stop`` runs on ``with`` exit, on error and at interpreter exit (``atexit``). None of
those run when the owner is killed: a notebook kernel restarted or killed by Jupyter, a test run
ended by SIGTERM or a CI time limit, the out-of-memory killer. Each server lives in a session of
its own (so that stopping it reaches its workers), which also means nothing else stops it.

So the first server a process starts also starts one small reaper, ``python -m llmlab.servers.reaper
OWNER_PID``, in a session of its own. The owner tells it over a pipe which servers it runs
(``watch PID`` / ``forget PID``). When the pipe closes or the reaper's parent is no longer the
owner, the owner is gone, whichever way it ended, and the reaper stops every server it still
watches, with all their descendants (:func:`llmlab.servers.tree.stop_tree`), then exits.

Why not ``PR_SET_PDEATHSIG``: it fires when the *thread* that spawned the child exits, and the
course starts servers from worker threads (the Ollama-compatible server's runners); it also
reaches only the direct child, not the workers the server starts itself.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import threading

import psutil

from llmlab.servers.tree import stop_tree

#: How often the reaper checks that its owner is still its parent (seconds).
POLL_S = 0.5
#: Grace period before SIGKILL once the owner is gone: long enough for vLLM to stop its workers.
GRACE_S = 10.0


class _Client:
    """The owner's end: starts the reaper on first use (again after a fork) and talks to it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._owner = 0
        self._watched: set[int] = set()

    def watch(self, pid: int) -> None:
        with self._lock:
            self._watched.add(pid)
            self._send(f"watch {pid}")

    def forget(self, pid: int) -> None:
        with self._lock:
            self._watched.discard(pid)
            if self._live_process():
                self._send(f"forget {pid}")

    @property
    def pid(self) -> int | None:
        """The reaper's process id, once one runs for this process."""
        process = self._live_process()
        return process.pid if process else None

    def _live_process(self) -> subprocess.Popen[bytes] | None:
        """The reaper this process started (not one inherited through a fork), if it is alive."""
        process = self._process
        if process is not None and process.poll() is None and self._owner == os.getpid():
            return process
        return None

    def _send(self, line: str) -> None:
        for _ in range(2):  # a reaper that was killed is replaced, and told all it must know
            try:
                _write(self._live_process() or self._start(), f"{line}\n")
                return
            except (BrokenPipeError, OSError):
                self._process = None

    def _start(self) -> subprocess.Popen[bytes]:
        self._owner = os.getpid()
        self._watched = {pid for pid in self._watched if psutil.pid_exists(pid)}
        self._process = subprocess.Popen(
            command(self._owner),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C or killpg aimed at the owner's group spares it
        )
        _write(self._process, "".join(f"watch {pid}\n" for pid in self._watched))
        return self._process


def _write(process: subprocess.Popen[bytes], text: str) -> None:
    assert process.stdin is not None  # started with stdin=PIPE
    process.stdin.write(text.encode())
    process.stdin.flush()


def command(owner: int) -> list[str]:
    """How a reaper for ``owner`` is started. ``-c``, not ``-m``: ``llmlab.servers`` imports this
    module first, and ``python -m`` would warn that it runs a module already imported."""
    return [sys.executable, "-c", f"from llmlab.servers.reaper import run; run({owner})"]


_client = _Client()
watch = _client.watch
forget = _client.forget


def reaper_pid() -> int | None:
    """The process id of this process's reaper (None before its first server)."""
    return _client.pid


def run(owner: int) -> None:
    """The reaper's loop: follow ``watch``/``forget`` lines until the owner is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watched: dict[int, psutil.Process] = {}
    stdin = sys.stdin.fileno()
    pending = b""
    while True:
        owner_alive = os.getppid() == owner
        # Once the owner is gone, what it wrote before dying is still read (a reaper slow to
        # start can find the owner dead with its "watch" lines unread), without waiting.
        if not select.select([stdin], [], [], POLL_S if owner_alive else 0)[0]:
            if owner_alive:
                continue
            break
        chunk = os.read(stdin, 65536)
        if not chunk:
            break  # the pipe closed: the owner exited
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            verb, _, pid = line.decode().partition(" ")
            if verb == "watch":
                with contextlib.suppress(psutil.NoSuchProcess):  # it already exited
                    watched[int(pid)] = psutil.Process(int(pid))
            elif verb == "forget":
                watched.pop(int(pid), None)
    stoppers = [
        threading.Thread(target=stop_tree, args=(pid,), kwargs={"timeout_s": GRACE_S})
        for pid, process in watched.items()
        if process.is_running()  # the same process, not a new one that reused its pid
    ]
    for stopper in stoppers:
        stopper.start()
    for stopper in stoppers:
        stopper.join()
