"""Shared fixtures (one real model per test session), and a check that the run leaves no process
behind: every process it started, however deep, carries ``LLMLAB_TEST_RUN`` in its environment,
and any of them still alive when the session ends fails the run, by name."""

import os
import uuid

import psutil
import pytest

from llmlab import reaper
from llmlab.prompts import SYSTEM_PROMPT
from llmlab.prompts import chat as ask  # noqa: F401 (re-exported for the tests)

SYSTEM = {"role": "system", "content": SYSTEM_PROMPT}
RUN_MARK = "LLMLAB_TEST_RUN"
#: Servers get this long to finish stopping (a killed owner's reaper waits 10 s before SIGKILL).
LEAK_GRACE_S = 20

os.environ[RUN_MARK] = uuid.uuid4().hex  # inherited by every process the tests start


@pytest.fixture(scope="session")
def llm():
    from llmlab.generation import LocalLLM  # PyTorch, only for the tests that run a model

    return LocalLLM()


def left_behind() -> list[psutil.Process]:
    """Processes this run started (at any depth) that are still alive, but for our reaper."""
    mark, ours = os.environ[RUN_MARK], {os.getpid(), reaper.reaper_pid()}
    found = []
    for process in psutil.process_iter():
        try:
            if process.pid not in ours and process.environ().get(RUN_MARK) == mark:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _, alive = psutil.wait_procs(left_behind(), timeout=LEAK_GRACE_S)
    described = []
    for process in alive:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                described.append(f"  {process.pid}: {' '.join(process.cmdline())[:160]}")
        except psutil.NoSuchProcess:
            continue
    if described:
        terminal = session.config.pluginmanager.get_plugin("terminalreporter")
        terminal.write_line("\nThe test run left these processes running:", red=True)
        for line in described:
            terminal.write_line(line)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
