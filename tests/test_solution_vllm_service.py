"""Exercise 2: the vLLM service, started by its own command, loaded by the harness, and checked
against vLLM's own count of the tokens it generated."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from llmlab.bench.prometheus import sweep_against_counter
from llmlab.servers import Server
from llmlab.servers.tree import KILL_TIMEOUT_S, STOP_TIMEOUT_S
from llmlab.settings import sweep_waves
from solutions import vllm_service

pytestmark = [pytest.mark.server, pytest.mark.vllm]

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "sk-solution-test"
TOKENS = 32


@pytest.fixture(scope="module")
def service() -> Iterator[Server]:
    """``python -m solutions.vllm_service`` serving, with test_vllm.py's settings for a fast
    start (eager mode, a small batch and cache)."""
    command = [sys.executable, "-m", "solutions.vllm_service", "--port", "{port}",
               "--api-key", API_KEY, "--max-num-seqs", "16", "--kv-cache-gib", "1",
               "--enforce-eager"]  # fmt: skip
    server = Server(
        command,
        name="solution-vllm",
        api_key=API_KEY,
        env={"PYTHONPATH": str(ROOT)},
        startup_timeout_s=600,
    )
    with server:
        yield server


@pytest.fixture(scope="module")
def model(service: Server) -> str:
    answer = httpx.get(service.url("/v1/models"), headers=service.headers, timeout=10)
    return answer.json()["data"][0]["id"]


def test_it_prints_where_it_serves_and_how_to_call_it(service: Server):
    deadline = time.monotonic() + 30  # printed just after vLLM answers /health
    while "Press Ctrl-C" not in service.log_tail(200) and time.monotonic() < deadline:
        time.sleep(0.5)
    printed = service.log_tail(200)
    assert f"at {service.url('/v1')}" in printed
    assert f'-H "Authorization: Bearer {API_KEY}"' in printed
    assert f'OpenAI(base_url="{service.url("/v1")}", api_key="{API_KEY}")' in printed


def test_the_api_key_is_enforced(service: Server):
    assert httpx.get(service.url("/v1/models"), timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer sk-wrong"}
    assert httpx.get(service.url("/v1/models"), headers=wrong, timeout=10).status_code == 401
    assert httpx.get(service.url("/v1/models"), headers=service.headers).status_code == 200


def test_harness_throughput_agrees_with_the_servers_own_count(
    service: Server, model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    agreements = asyncio.run(
        sweep_against_counter(service.base_url, model, [1, 8], api_key=API_KEY, max_tokens=TOKENS)
    )
    # the harness's default workload: sweep_waves() (2; bin/test sets 1) x the level, at least 8
    for agreement, requests in zip(agreements, [8, max(8, 8 * sweep_waves())], strict=True):
        result = agreement.result
        assert (result.completed, result.failed) == (requests, 0), result.errors
        assert result.output_tokens == requests * TOKENS  # ignore_eos: every answer as asked
        # the warm-up request is outside the window: the server counted exactly these tokens
        assert agreement.server_tokens == result.output_tokens
        assert 0.9 <= agreement.ratio <= 1.1, agreement.row()

    paths = vllm_service.report(agreements, tmp_path)
    printed = capsys.readouterr().out
    assert "| target | concurrency |" in printed and "| concurrency | harness tokens |" in printed
    assert paths["json"].stat().st_size > 0 and paths["plot"].stat().st_size > 0


def test_ctrl_c_stops_vllm_and_every_process_it_started(service: Server):
    process = psutil.Process(service.process.pid)
    tree = [process, *process.children(recursive=True)]
    assert any("vllm" in " ".join(child.cmdline()) for child in tree[1:])
    os.kill(process.pid, signal.SIGINT)
    # What is checked is that every process goes, not how fast: Server.stop alone may take
    # STOP_TIMEOUT_S + KILL_TIMEOUT_S, and a loaded machine has been seen to need over a minute.
    assert service.process.wait(6 * (STOP_TIMEOUT_S + KILL_TIMEOUT_S)) == 0
    _, alive = psutil.wait_procs(tree, timeout=30)
    assert alive == [], f"left running: {alive}"
    assert "Stopping vLLM" in service.log_tail(5)


def test_help_explains_the_settings_that_matter_under_load():
    done = subprocess.run(
        [sys.executable, "-m", "solutions.vllm_service", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    for setting in ["--max-num-seqs", "VLLM_CPU_KVCACHE_SPACE", "--gpu-memory-utilization",
                    "--max-model-len", "--api-key", "127.0.0.1", "--load-test"]:  # fmt: skip
        assert setting in done.stdout, setting
