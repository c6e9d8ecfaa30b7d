"""Server process management, on real processes: Python's own HTTP server and a few misfits."""

import os
import signal
import socket
import subprocess
import sys

import httpx
import psutil
import pytest

from llmlab.errors import PortInUseError, ServerStartError
from llmlab.servers import Server, free_port, port_in_use

pytestmark = pytest.mark.server

HTTP_SERVER = [sys.executable, "-m", "http.server", "--bind", "{host}", "{port}"]
# A server that starts a worker process of its own, as vLLM does.
WITH_WORKER = [
    sys.executable,
    "-c",
    "import subprocess, sys, http.server as h; subprocess.Popen(['sleep', '300']); "
    "h.HTTPServer((sys.argv[1], int(sys.argv[2])), h.SimpleHTTPRequestHandler).serve_forever()",
    "{host}",
    "{port}",
]
# One that starts a worker in a session of its own, as the Ollama-compatible server starts its
# llama-servers: the server's process group does not reach it.
WITH_DETACHED_WORKER = [
    sys.executable,
    "-c",
    "import subprocess, sys, http.server as h; "
    "subprocess.Popen(['sleep', '300'], start_new_session=True); "
    "h.HTTPServer((sys.argv[1], int(sys.argv[2])), h.SimpleHTTPRequestHandler).serve_forever()",
    "{host}",
    "{port}",
]
# An owner that starts that server, says so, and waits to be killed.
OWNER = f"""
import sys, time
from llmlab.servers import Server
server = Server({WITH_DETACHED_WORKER!r}, name="detached", health_path="/").start()
print("ready", flush=True)
time.sleep(300)
"""


def test_starts_on_a_free_local_port_and_stops():
    with Server(HTTP_SERVER, name="files", health_path="/") as server:
        assert server.host == "127.0.0.1"
        assert httpx.get(server.url("/")).status_code == 200
        assert server.log_path.is_file()
        pid = server.process.pid
    assert not server.running
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_stop_ends_the_worker_processes_too():
    with Server(WITH_WORKER, name="workers", health_path="/") as server:
        workers = psutil.Process(server.process.pid).children()
        assert [w.name() for w in workers] == ["sleep"]
    gone, alive = psutil.wait_procs(workers, timeout=5)
    assert alive == []


def test_stop_ends_workers_in_sessions_of_their_own():
    with Server(WITH_DETACHED_WORKER, name="detached", health_path="/") as server:
        workers = psutil.Process(server.process.pid).children()
        assert [w.name() for w in workers] == ["sleep"]
        assert os.getsid(workers[0].pid) != os.getsid(server.process.pid)
    gone, alive = psutil.wait_procs(workers, timeout=5)
    assert alive == []


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_servers_die_with_their_owner_however_it_ends(how):
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline().strip() == "ready"
        started = psutil.Process(owner.pid).children(recursive=True)
        # the reaper, the server, and the worker the server started
        assert len(started) == 3
        assert sum("llmlab.servers.reaper" in " ".join(p.cmdline()) for p in started) == 1
        assert sum(p.name() == "sleep" for p in started) == 1
        owner.send_signal(how)  # neither runs atexit hooks
        owner.wait(10)
        gone, alive = psutil.wait_procs(started, timeout=20)
        assert alive == []
    finally:
        owner.kill()


def test_an_error_inside_the_block_still_stops_the_server():
    with pytest.raises(KeyError), Server(HTTP_SERVER, name="files", health_path="/") as server:
        raise KeyError("boom")
    assert not server.running


def test_a_port_in_use_is_refused_with_a_hint():
    with Server(HTTP_SERVER, name="first", health_path="/") as first:
        second = Server(HTTP_SERVER, name="second", port=first.port, health_path="/")
        with pytest.raises(PortInUseError, match=f"Port {first.port} .* already in use"):
            second.start()


def test_a_server_that_dies_at_start_shows_its_log():
    dying = [
        sys.executable,
        "-c",
        "print('cannot load model: file not found'); raise SystemExit(3)",
    ]
    with pytest.raises(ServerStartError, match="exited with code 3") as failure:
        Server(dying, name="dying").start()
    assert "cannot load model: file not found" in str(failure.value)


def test_a_server_that_never_answers_times_out_and_is_killed():
    silent = Server(
        [sys.executable, "-c", "import time; print('loading...', flush=True); time.sleep(300)"],
        name="silent",
        startup_timeout_s=2,
    )
    with pytest.raises(ServerStartError, match="did not answer /health within 2 s") as failure:
        silent.start()
    assert "loading..." in str(failure.value)
    assert not silent.running


def test_the_api_key_becomes_a_bearer_header():
    assert Server(HTTP_SERVER, name="k", api_key="sk-1").headers == {"Authorization": "Bearer sk-1"}
    assert Server(HTTP_SERVER, name="k").headers == {}


def test_free_port_gives_a_bindable_port():
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))  # raises if something holds it
        listener.listen()
        assert port_in_use(port)
