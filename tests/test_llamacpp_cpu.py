"""The one-time check of which llama.cpp CPU kernels run here, on stand-ins for llama-server that
crash the way a build with AMX kernels crashes on a machine that does not grant AMX (SIGSEGV
before the server is ready, or at its first matrix product), and on the real llama-server."""

import json
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest

from llmlab.errors import ServerStartError
from llmlab.llamacpp.cpu import llama_server_cpu_args, record_path
from llmlab.servers.llamacpp import llama_server

pytestmark = pytest.mark.server

# A llama-server stand-in: answers /health and /completion like the real one. CRASH says when
# it dies of SIGSEGV unless started with --no-repack: "start" (during its warm-up, as seen on
# an Intel Xeon in a VM), "first-request", or "never"; EXIT makes it fail in another way.
STAND_IN = """#!{python}
import http.server, json, os, signal, sys
args = sys.argv[1:]
with open(os.environ["STAND_IN_CALLS"], "a") as calls:
    calls.write(" ".join(args) + "\\n")
crashes = "--no-repack" not in args and os.environ.get("LLAMA_ARG_REPACK") != "0"
if os.environ.get("EXIT"):
    print("error: failed to load model", flush=True)
    sys.exit(int(os.environ["EXIT"]))
if crashes and os.environ["CRASH"] == "start":
    print("llama threadpool init", flush=True)
    os.kill(os.getpid(), signal.SIGSEGV)

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.reply({{"status": "ok"}})

    def do_POST(self):
        if crashes and os.environ["CRASH"] == "first-request":
            os.kill(os.getpid(), signal.SIGSEGV)
        self.reply({{"content": " there", "stop": True}})

    def reply(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

host, port = args[args.index("--host") + 1], int(args[args.index("--port") + 1])
http.server.HTTPServer((host, port), Handler).serve_forever()
"""


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in llama-server, in a cache folder of its own, with its calls logged."""
    binary = tmp_path / "bin" / "llama-server"
    binary.parent.mkdir()
    binary.write_text(STAND_IN.format(python=sys.executable))
    binary.chmod(0o755)
    monkeypatch.setenv("LLMLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("STAND_IN_CALLS", str(tmp_path / "calls.log"))
    monkeypatch.delenv("LLAMA_ARG_REPACK", raising=False)
    monkeypatch.delenv("EXIT", raising=False)
    return binary


def calls(stand_in: Path) -> list[str]:
    log = Path(os.environ["STAND_IN_CALLS"])
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("when", ["start", "first-request"])
def test_a_binary_whose_default_kernels_crash_gets_no_repack(stand_in, monkeypatch, when, capsys):
    monkeypatch.setenv("CRASH", when)
    assert llama_server_cpu_args(stand_in) == ("--no-repack",)
    assert "SIGSEGV" in capsys.readouterr().out  # the user is told what was chosen and why
    record = json.loads(record_path(stand_in).read_text())
    assert record == {"args": ["--no-repack"], "crashed_without": [-signal.SIGSEGV]}


def test_the_decision_is_made_once_and_every_llama_server_gets_it(stand_in, monkeypatch):
    monkeypatch.setenv("CRASH", "start")
    monkeypatch.setenv("LLAMA_SERVER", str(stand_in))
    assert llama_server_cpu_args(stand_in) == ("--no-repack",)
    checks = len(calls(stand_in))
    with llama_server(parallel=1) as server:
        assert "--no-repack" in server.command
        answer = httpx.post(server.url("/completion"), json={"prompt": "Hi"}, timeout=10)
        assert answer.json()["content"] == " there"
    assert len(calls(stand_in)) == checks + 1  # the server itself, no second check


def test_a_binary_that_runs_gets_no_extra_flags(stand_in, monkeypatch, capsys):
    monkeypatch.setenv("CRASH", "never")
    assert llama_server_cpu_args(stand_in) == ()
    assert len(calls(stand_in)) == 1
    assert capsys.readouterr().out == ""  # nothing to say where nothing changes


def test_a_new_binary_is_checked_again(stand_in, monkeypatch):
    monkeypatch.setenv("CRASH", "never")
    llama_server_cpu_args(stand_in)
    first = record_path(stand_in)
    stand_in.write_text(stand_in.read_text() + "\n# rebuilt\n")
    assert record_path(stand_in) != first
    monkeypatch.setenv("CRASH", "start")
    assert llama_server_cpu_args(stand_in) == ("--no-repack",)


def test_a_failure_that_is_not_a_crash_is_raised_and_not_remembered(stand_in, monkeypatch):
    monkeypatch.setenv("CRASH", "never")
    monkeypatch.setenv("EXIT", "1")
    with pytest.raises(ServerStartError, match="failed to load model") as failure:
        llama_server_cpu_args(stand_in)
    assert failure.value.returncode == 1
    assert not record_path(stand_in).exists()


def test_a_binary_that_crashes_whatever_the_flags_says_to_rebuild(stand_in, monkeypatch):
    monkeypatch.setenv("CRASH", "start")
    stand_in.write_text(stand_in.read_text().replace('"--no-repack" not in args and ', ""))
    with pytest.raises(ServerStartError, match="crashed on this CPU with every setting"):
        llama_server_cpu_args(stand_in)
    assert not record_path(stand_in).exists()


def test_the_real_llama_server_runs_with_what_was_decided():
    with llama_server(parallel=1) as server:
        answer = httpx.post(
            server.url("/completion"), json={"prompt": "Hello", "n_predict": 4}, timeout=60
        )
        assert answer.status_code == 200 and answer.json()["tokens_predicted"] > 0
