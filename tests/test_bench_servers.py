"""The harness against real backends: llama-server's two APIs, a port where nothing listens,
Transformers in process, the command line, and ``llmlab.bench.tables`` on top of it all."""

import asyncio
import json
import subprocess
import sys

import pytest

from llmlab.bench import (
    InProcess,
    LlamaCppCompletion,
    OpenAIChat,
    read_counter,
    run,
)
from llmlab.bench.prometheus import LLAMACPP_PREDICTED_TOKENS
from llmlab.bench.tables import openai_chat_stream, sweep
from llmlab.prompts import sample_chats
from llmlab.servers import free_port
from llmlab.servers.llamacpp import llama_server

pytestmark = pytest.mark.server

API_KEY = "sk-bench-test"
TOKENS = 12


@pytest.fixture(scope="module")
def server():
    # one thread: on a shared 2-core machine, two spinning threads stall each other
    with llama_server(parallel=4, api_key=API_KEY, threads=1) as server:
        yield server


def check_every_request_streamed(result, requests):
    assert (result.completed, result.failed) == (requests, 0), result.errors
    for record in result.records:
        assert record.output_tokens == TOKENS  # ignore_eos: every answer as long as asked
        assert 0 < record.ttft_s < record.e2e_s
        assert TOKENS // 2 <= len(record.itls_s) <= TOKENS - 1  # about one chunk a token
    assert result.output_tokens == requests * TOKENS
    assert result.ttft_ms.p50 <= result.e2e_ms.p50 and result.tpot_ms.mean > 0


def test_openai_endpoint_under_concurrency_matches_the_server_count(server):
    target = OpenAIChat(server.url("/v1"), server.model, max_tokens=TOKENS, api_key=API_KEY)
    before = read_counter(server.base_url, LLAMACPP_PREDICTED_TOKENS, api_key=API_KEY)
    result = asyncio.run(run(target, sample_chats(8), concurrency=4))
    check_every_request_streamed(result, 8)
    # the server generated what the client counted, plus the warm-up request
    after = read_counter(server.base_url, LLAMACPP_PREDICTED_TOKENS, api_key=API_KEY)
    assert after - before == result.output_tokens + TOKENS
    assert all(record.prompt_tokens > 10 for record in result.records)


def test_native_completion_endpoint(server):
    target = LlamaCppCompletion(server.base_url, max_tokens=TOKENS, api_key=API_KEY)
    result = asyncio.run(run(target, sample_chats(4), concurrency=4, warmup=False))
    check_every_request_streamed(result, 4)
    assert all(record.prompt_tokens > 10 for record in result.records)


def test_error_answers_and_dead_ports_are_failed_requests_not_exceptions(server):
    wrong_key = OpenAIChat(server.url("/v1"), server.model, max_tokens=TOKENS, api_key="wrong")
    result = asyncio.run(run(wrong_key, sample_chats(2), concurrency=2))
    assert (result.completed, result.failed) == (0, 2)
    assert result.errors[0].startswith("HTTP 401: ")

    nowhere = f"http://127.0.0.1:{free_port()}"
    for target in [OpenAIChat(nowhere + "/v1", "any"), LlamaCppCompletion(nowhere)]:
        result = asyncio.run(run(target, sample_chats(3), concurrency=2))
        assert (result.completed, result.failed) == (0, 3)
        assert all(error.startswith("ConnectError") for error in result.errors), result.errors
        assert result.output_throughput == 0


def test_transformers_in_process_one_request_at_a_time(llm):
    target = InProcess(llm, max_tokens=8)
    result = asyncio.run(run(target, sample_chats(2), warmup=False))
    assert (result.completed, result.failed) == (2, 0), result.errors
    assert [record.output_tokens for record in result.records] == [8, 8]
    assert all(0 < record.ttft_s < record.e2e_s for record in result.records)
    assert all(record.prompt_tokens > 10 for record in result.records)
    with pytest.raises(ValueError, match="1 request"):
        asyncio.run(run(target, sample_chats(2), concurrency=2))


def test_command_line_prints_a_table_and_writes_json(server, tmp_path):
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "llmlab.bench", "--url", server.url("/v1"),
               "--model", server.model, "--api-key", API_KEY, "--concurrency", "1", "2",
               "--requests", "2", "--max-tokens", str(TOKENS), "--json", str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (
        "| target | concurrency |" in done.stdout and "- TTFT: time to first token" in done.stdout
    )
    results = json.loads(out.read_text())["results"]
    assert [(r["concurrency"], r["completed"], r["failed"]) for r in results] == [
        (1, 2, 0),
        (2, 2, 0),
    ]
    assert len(results[1]["records"][0]["chunk_times_s"]) >= TOKENS // 2


def test_load_sweep_keeps_the_chapters_table(server):
    send = openai_chat_stream(server.model, max_tokens=TOKENS)
    [level] = asyncio.run(
        sweep(server.url("/v1"), send, api_key=API_KEY, levels=[2], min_requests=4)
    )
    row = level.row()
    assert list(row) == ["concurrency", "requests", "output tokens/s", "E2E p50 (ms)",
                         "E2E p90 (ms)", "E2E p99 (ms)", "TTFT p50 (ms)"]  # fmt: skip
    assert (row["concurrency"], row["requests"], level.output_tokens) == (2, 4, 4 * TOKENS)
    assert row["TTFT p50 (ms)"] == level.result.ttft_ms.p50 < row["E2E p50 (ms)"]
