"""Stop a process and everything it started, wherever those children went.

A server is rarely one process. vLLM starts engine workers in its own process group; the
course's Ollama-compatible server starts one llama-server per loaded model, each in a session
(and so a process group) of its own. Signalling the leader's process group misses the second
kind, and once the leader is gone its children are re-parented to init and can no longer be
found from it. So the tree is listed first, then signalled as a whole: SIGTERM to every process
in it and to the leader's group, a grace period, then SIGKILL to whatever is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import psutil

#: How long a process tree gets to exit after SIGTERM before it is killed.
STOP_TIMEOUT_S = 20.0
#: How long processes that ignored SIGTERM get to die of SIGKILL before we give up waiting.
KILL_TIMEOUT_S = 10.0


def process_tree(pid: int) -> list[psutil.Process]:
    """``pid`` and all its descendants that are alive now (an empty list if ``pid`` is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def stop_tree(
    pid: int,
    *,
    timeout_s: float = STOP_TIMEOUT_S,
    kill_timeout_s: float = KILL_TIMEOUT_S,
    popen: subprocess.Popen[bytes] | None = None,
) -> bool:
    """Stop ``pid``, its process group and its descendants; True when all of them are gone.

    ``pid`` leads its own process group (``Popen(..., start_new_session=True)``), so the group
    is signalled even when the leader has already died and left members behind.

    ``popen`` is the ``Popen`` of ``pid`` when the caller started it: it is waited for through
    ``Popen.wait``, so the caller still learns its exit code (psutil would reap it silently).
    """
    tree = [p for p in process_tree(pid) if popen is None or p.pid != pid]
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, kill_timeout_s)):
        _signal_group(pid, sig)
        for process in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(sig)
        deadline = time.monotonic() + wait_s
        leader_gone = popen is None or _wait_popen(popen, wait_s)
        _, tree = psutil.wait_procs(tree, timeout=max(0.0, deadline - time.monotonic()))
        if leader_gone and not tree:
            return True
    return False


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    """Signal the process group ``pgid`` (members whose parent already died included)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _wait_popen(popen: subprocess.Popen[bytes], timeout_s: float) -> bool:
    try:
        popen.wait(timeout_s)
        return True
    except subprocess.TimeoutExpired:
        return False
