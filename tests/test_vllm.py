"""A real vLLM server on the default model, driven by the official openai client and ours."""

import asyncio

import httpx
import openai
import psutil
import pytest

from llmlab.bench import read_info
from llmlab.http import AsyncBatchClient
from llmlab.prompts import chat
from llmlab.servers import Server
from llmlab.servers.tree import process_tree
from llmlab.servers.vllm import vllm_server
from llmlab.sizing.paged_kv import KVPool

pytestmark = [pytest.mark.server, pytest.mark.vllm]

API_KEY = "sk-course-test"
CAPITAL = chat("What is the capital of France?")


@pytest.fixture(scope="module")
def server():
    server = vllm_server(api_key=API_KEY, enforce_eager=True, max_num_seqs=16).start()
    group = [server.process, *psutil.Process(server.process.pid).children(recursive=True)]
    yield server
    server.stop()
    gone, alive = psutil.wait_procs(group, timeout=10)
    assert alive == [], f"vLLM processes left running: {alive}"


@pytest.fixture(scope="module")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url("/v1"), api_key=API_KEY, timeout=60)


def test_chat_answers_with_usage(server: Server, client: openai.OpenAI):
    response = client.chat.completions.create(
        model=server.model, messages=CAPITAL, temperature=0, max_tokens=32
    )
    assert response.choices[0].message.content.strip()  # its words depend on the CPU
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.prompt_tokens == 27  # the same chat template as Transformers


def test_completions_continue_a_prompt(server: Server, client: openai.OpenAI):
    response = client.completions.create(
        model=server.model, prompt="The capital of France is", temperature=0, max_tokens=3
    )
    assert response.choices[0].text.strip() and response.usage.completion_tokens == 3


def test_streaming_gives_the_same_answer_in_pieces(server: Server, client: openai.OpenAI):
    whole = client.chat.completions.create(
        model=server.model, messages=CAPITAL, temperature=0, max_tokens=32
    )
    stream = client.chat.completions.create(
        model=server.model, messages=CAPITAL, temperature=0, max_tokens=32, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_the_api_key_is_enforced(server: Server):
    assert httpx.get(server.url("/v1/models")).status_code == 401
    assert httpx.get(server.url("/v1/models"), headers=server.headers).status_code == 200
    wrong = openai.OpenAI(base_url=server.url("/v1"), api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_the_api_key_is_not_on_any_command_line(server: Server):
    # Any user of the machine reads every process's arguments (`ps -eo args`).
    for process in process_tree(server.process.pid):
        assert API_KEY not in " ".join(process.cmdline()), process.name()


def test_the_health_endpoint_needs_no_key(server: Server):
    assert httpx.get(server.url("/health")).status_code == 200


def test_the_async_client_keeps_input_order_and_reports_a_rejected_request(
    server: Server, client: openai.OpenAI
):
    # Each result must belong to its own prompt: results come back in input order. The prompts
    # differ in length, and the server's own count of each prompt's tokens (deterministic, unlike
    # a small model's greedy text, which changes with the CPU's arithmetic) says which is which.
    questions = [
        "Say hi.",
        "Name a colour of the sky on a clear day.",
        "Write one sentence about a cat that sleeps in the sun all afternoon, every afternoon.",
    ]
    prompts = [chat(question) for question in questions]
    alone = [
        client.chat.completions.create(
            model=server.model, messages=p, max_tokens=1
        ).usage.prompt_tokens
        for p in prompts
    ]
    assert alone == sorted(set(alone)), alone  # three different lengths
    too_long = chat("word " * 3000)  # over --max-model-len 2048: the server refuses it

    async def main():
        async with AsyncBatchClient(
            server.url("/v1"), server.model, api_key=API_KEY, concurrency=4
        ) as batch:
            return await batch.run([*prompts, too_long], temperature=0, max_tokens=32)

    results = asyncio.run(main())
    assert [r.index for r in results] == [0, 1, 2, 3]
    assert [r.prompt_tokens for r in results[:3]] == alone
    for result in results[:3]:
        assert result.ok and result.text and result.completion_tokens > 0, result
    rejected = results[3]
    assert not rejected.ok and rejected.attempts == 1
    assert rejected.error.startswith("HTTP 400") and "2048" in rejected.error


def test_the_cache_configuration_is_read_from_the_metrics(server: Server):
    info = read_info(server.base_url, "vllm:cache_config_info", api_key=server.api_key)
    pool = KVPool.from_info(info)
    # The log's "CPU KV cache size: N tokens" is this pool: blocks x block size.
    sizes = [line for line in server.log_tail(400).splitlines() if "KV cache size:" in line]
    assert sizes and f"{pool.tokens:,} tokens" in sizes[-1]
    with pytest.raises(ValueError, match="vllm:cache_config_info"):
        read_info(server.base_url, "vllm:no_such_info", api_key=server.api_key)
