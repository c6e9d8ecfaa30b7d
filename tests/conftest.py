"""Shared fixtures (one real model per test session), and two checks on the tests themselves:

* a test that starts a server is marked ``server`` (``bin/test --quick`` leaves those out): an
  unmarked test that calls ``Server.start`` fails and says so;
* the run leaves no process behind: every process it started, however deep, carries
  ``LLMLAB_TEST_RUN`` in its environment, and any still alive when the session ends fails the
  run, by name."""

import os
import uuid

import psutil
import pytest

from llmlab.prompts import SYSTEM_PROMPT
from llmlab.prompts import chat as ask  # noqa: F401 (re-exported for the tests)
from llmlab.servers import Server, reaper
from llmlab.settings import fuzz_examples

SYSTEM = {"role": "system", "content": SYSTEM_PROMPT}
RUN_MARK = "LLMLAB_TEST_RUN"
#: Servers get this long to finish stopping (a killed owner's reaper waits 10 s before SIGKILL).
LEAK_GRACE_S = 20

#: bin/test's --nbval-cell-timeout: a chapter cell that starts vLLM may take minutes.
NOTEBOOK_CELL_TIMEOUT_S = 900
#: The fuzz tests' budget: examples per operation and kind of request, and Hypothesis's seed.
FUZZ_EXAMPLES = fuzz_examples()
FUZZ_SEED = int(os.environ.get("LLMLAB_FUZZ_SEED", "20261130"))

os.environ[RUN_MARK] = uuid.uuid4().hex  # inherited by every process the tests start


def pytest_report_header() -> str:
    return f"fuzzing: {FUZZ_EXAMPLES} examples per operation and kind, seed {FUZZ_SEED}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not isinstance(item, pytest.Function):  # a chapter's cell, run by nbval
            item.add_marker(pytest.mark.notebook)
            item.add_marker(pytest.mark.server)  # chapters start every kind of server
            item.add_marker(pytest.mark.timeout(NOTEBOOK_CELL_TIMEOUT_S))


_may_start_servers = True
_start_server = Server.start


def pytest_runtest_setup(item: pytest.Item) -> None:
    global _may_start_servers
    _may_start_servers = item.get_closest_marker("server") is not None


def _checked_start(server: Server) -> Server:
    if not _may_start_servers:
        raise RuntimeError(
            f"this test starts a server ({server.name}) but is not marked: add "
            f"`pytestmark = pytest.mark.server` to its module (bin/test --quick leaves it out)"
        )
    return _start_server(server)


Server.start = _checked_start  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def llm():
    from llmlab.local.generation import LocalLLM  # PyTorch, only for the tests that run a model

    return LocalLLM()


def llama_servers(server: Server) -> dict[str, str]:
    """The URL of each generating llama-server an Ollama-compatible server runs, by model."""
    found = {}
    for child in psutil.Process(server.process.pid).children():
        args = child.cmdline()
        if child.name() == "llama-server" and "--embeddings" not in args:  # not its reaper
            found[args[args.index("--alias") + 1]] = (
                f"http://127.0.0.1:{args[args.index('--port') + 1]}"
            )
    return found


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
