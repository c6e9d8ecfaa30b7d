"""Every process the course starts dies with its owner, whichever way the owner ends: a plain
Python process or a Jupyter kernel killed outright (SIGKILL), a test run stopped with SIGTERM,
and a request that starts a model and goes away before it is loaded. All on real servers."""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from jupyter_client.manager import start_new_kernel

from llmlab.models import default_gguf
from llmlab.ollama.modelfile import parse_modelfile
from llmlab.ollama.runners import Runners
from llmlab.ollama.store import ModelStore
from llmlab.servers import reaper
from llmlab.servers.tree import process_tree

pytestmark = [pytest.mark.server, pytest.mark.vllm, pytest.mark.notebook]

#: Starts an Ollama-compatible server and loads a model into it (one llama-server runner).
OLLAMA_WITH_A_RUNNER = """
import ollama
from llmlab.models import default_gguf
from llmlab.ollama import ollama_server

ollama_app = ollama_server(store_dir=STORE, threads=1).start()
client = ollama.Client(host=ollama_app.base_url, timeout=120)
client.create(model="m", from_=str(default_gguf()))
client.generate(model="m", prompt="Hi", options={"num_predict": 1})
"""
#: A vLLM server, started in a thread (the slowest to start: the other servers start meanwhile).
VLLM_MEANWHILE = """
from concurrent.futures import ThreadPoolExecutor
from llmlab.servers.vllm import vllm_server

vllm = ThreadPoolExecutor().submit(vllm_server(enforce_eager=True, max_num_seqs=4).start)
"""
#: Two llama-server replicas behind vLLM's router, with an API key; then vLLM is waited for.
ROUTER_AND_VLLM = """
from llmlab.scaleout import replicas, vllm_router

fleet = replicas(2, parallel=1, api_key="sk-lifetime")
servers = fleet.__enter__()
router = vllm_router([s.base_url for s in servers], api_key="sk-lifetime").start()
vllm.result()
"""
#: Grace the reaper gives a server after SIGTERM (10 s) and after SIGKILL, with room to spare.
GONE_WITHIN_S = 30


def owner_script(store: Path, *parts: str) -> str:
    code = "".join(parts).replace("STORE", repr(str(store)))
    return code + "\nprint('ready', flush=True)\nimport time; time.sleep(600)\n"


def assert_all_gone(processes: list[psutil.Process]) -> None:
    gone, alive = psutil.wait_procs(processes, timeout=GONE_WITHIN_S)
    assert alive == [], [" ".join(p.cmdline()[:3]) for p in alive if p.is_running()]


def started_servers(processes: list[psutil.Process]) -> set[str]:
    """Which kinds of server are among ``processes`` (by their command lines)."""
    kinds = {
        "llama-server": ("llama-server",),
        "ollama": ("llmlab.ollama",),
        "router": ("vllm::router", "llmlab.scaleout.launch_router"),  # it renames itself
        "vllm": ("vllm.entrypoints",),
    }
    found = set()
    for process in processes:
        command = " ".join(process.cmdline())
        found |= {kind for kind, marks in kinds.items() if any(m in command for m in marks)}
    return found


def test_a_killed_python_process_takes_every_server_with_it(tmp_path: Path):
    script = owner_script(tmp_path, VLLM_MEANWHILE, OLLAMA_WITH_A_RUNNER, ROUTER_AND_VLLM)
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline().strip() == "ready"
        started = process_tree(owner.pid)[1:]
        assert started_servers(started) == {"llama-server", "ollama", "router", "vllm"}
        # 2 replicas + 1 runner, each a llama-server of its own
        assert sum(p.name() == "llama-server" for p in started) == 3
        owner.kill()
        owner.wait()
        assert_all_gone(started)
    finally:
        owner.kill()


def test_a_test_run_stopped_with_sigterm_leaves_nothing(tmp_path: Path):
    ready = tmp_path / "ready"
    (tmp_path / "test_hangs.py").write_text(
        "import pathlib, time\n\n\ndef test_hangs():\n"
        + textwrap.indent(owner_script(tmp_path, OLLAMA_WITH_A_RUNNER), "    ")
        .replace("print('ready', flush=True)", f"pathlib.Path({str(ready)!r}).touch()")
    )  # fmt: skip
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while not ready.exists():
            assert time.monotonic() < deadline, "the inner test run did not get its servers up"
            with contextlib.suppress(subprocess.TimeoutExpired):
                run.wait(0.2)
                pytest.fail(f"the inner test run ended early, with code {run.returncode}")
        started = process_tree(run.pid)[1:]
        assert started_servers(started) == {"llama-server", "ollama"}
        run.send_signal(signal.SIGTERM)
        run.wait(30)
        assert_all_gone(started)
    finally:
        run.kill()


def test_a_kernel_killed_by_jupyter_takes_its_servers_with_it():
    # nbval and a "Restart kernel" in JupyterLab both end a kernel with shutdown_kernel(now=True)
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        reply = client.execute_interactive(
            "from llmlab.servers.llamacpp import llama_server\n"
            "server = llama_server(parallel=1).start()",
            timeout=120,
        )
        assert reply["content"]["status"] == "ok"
        kernel_pid = manager.provisioner.process.pid
        started = process_tree(kernel_pid)[1:]
        assert started_servers(started) == {"llama-server"}
        manager.shutdown_kernel(now=True)
        assert_all_gone(started)
    finally:
        client.stop_channels()
        if manager.is_alive():
            manager.shutdown_kernel(now=True)


def test_a_model_start_whose_request_went_away_is_stopped_at_shutdown(tmp_path: Path):
    store = ModelStore(tmp_path)
    model = store.create("m", parse_modelfile(f"FROM {default_gguf()}"))

    async def cancel_while_loading() -> None:
        runners = Runners(threads=1)
        loading = asyncio.ensure_future(runners.acquire(model, num_ctx=512))
        while not _llama_servers():  # the start is in flight in a worker thread
            await asyncio.sleep(0.05)
        loading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loading
        await runners.aclose()

    asyncio.run(cancel_while_loading())
    assert _llama_servers() == []


def _llama_servers() -> list[psutil.Process]:
    return [p for p in process_tree(os.getpid())[1:] if p.name() == "llama-server"]


def test_the_reaper_reads_what_its_owner_wrote_before_dying():
    """A reaper slow to start can find its owner already dead, with the ``watch`` line unread.

    Here the "owner" (pid 1) is not the reaper's parent from the start, and the line is in the
    pipe before the reaper runs: it must still stop the server it was told to watch."""
    start_orphan = "import subprocess as s; print(s.Popen(['sleep', '300'], stdout=s.DEVNULL).pid)"
    pid = int(subprocess.check_output([sys.executable, "-c", start_orphan]))
    server = psutil.Process(pid)  # an orphan, as a dead owner's server is
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, f"watch {pid}\n".encode())
        watcher = subprocess.Popen(reaper.command(1), stdin=read_end)
        os.close(read_end)
        assert watcher.wait(GONE_WITHIN_S) == 0
        assert_all_gone([server])
    finally:
        os.close(write_end)
        with contextlib.suppress(psutil.NoSuchProcess):
            server.kill()
