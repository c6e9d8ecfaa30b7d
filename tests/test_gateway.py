"""The service in gateway mode, in front of a real llama-server."""

import time

import httpx
import openai
import psutil
import pytest

from llmlab.bench.prometheus import read_histogram
from llmlab.llamacpp.client import LlamaCppClient
from llmlab.prompts import chat
from llmlab.servers import Server
from llmlab.servers.llamacpp import llama_server
from llmlab.servers.service import service_server
from llmlab.service.app import FIRST_TOKEN_STAGES

STAGES = "llmlab_first_token_stage_seconds"

pytestmark = pytest.mark.server
BACKEND_KEY = "sk-backend"
GATEWAY_KEY = "sk-gateway"
CAPITAL = chat("What is the capital of France?")


@pytest.fixture(scope="module")
def backend():
    with llama_server(api_key=BACKEND_KEY, parallel=4) as backend:
        yield backend


@pytest.fixture(scope="module")
def gateway(backend: Server):
    args = ["--backend", backend.url("/v1"), "--backend-model", backend.model]
    with service_server(*args, api_key=GATEWAY_KEY, backend_api_key=BACKEND_KEY) as gateway:
        yield gateway


def test_chat_goes_through_the_backend_with_the_models_template(gateway: Server):
    response = httpx.post(
        gateway.url("/chat"), headers=gateway.headers, timeout=60,
        json={"messages": CAPITAL, "temperature": 0, "max_tokens": 32},
    )  # fmt: skip
    body = response.json()
    assert body["text"].strip()
    assert body["usage"]["prompt_tokens"] == 27  # the backend saw exactly the gateway's tokens
    assert body["finish_reason"] == "stop"


def test_the_openai_client_streams_through_the_gateway(gateway: Server):
    client = openai.OpenAI(base_url=gateway.url("/v1"), api_key=GATEWAY_KEY)
    chunks = list(client.chat.completions.create(
        model="any", messages=CAPITAL, temperature=0, max_tokens=32, stream=True,
        stream_options={"include_usage": True},
    ))  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[-1].usage.completion_tokens > 0


def test_the_gateway_keeps_its_own_key_and_limits(gateway: Server):
    body = {"messages": CAPITAL, "max_tokens": 4}
    assert httpx.post(gateway.url("/chat"), json=body).status_code == 401
    too_long = {"messages": chat("word " * 2000)}
    response = httpx.post(gateway.url("/chat"), json=too_long, headers=gateway.headers)
    assert response.status_code == 400


def test_neither_key_is_on_the_gateways_command_line(gateway: Server):
    # Any user of the machine reads every process's arguments (`ps -eo args`).
    arguments = " ".join(psutil.Process(gateway.started_process.pid).cmdline())
    assert GATEWAY_KEY not in arguments and BACKEND_KEY not in arguments


def test_a_client_that_leaves_frees_the_backend_slot(gateway: Server, backend: Server):
    body = {"model": "any", "messages": chat("Write a very long story."), "max_tokens": 1000,
            "stream": True, "ignore_eos": True}  # fmt: skip
    with httpx.stream("POST", gateway.url("/v1/chat/completions"), json=body,
                      headers=gateway.headers, timeout=60) as response:  # fmt: skip
        next(response.iter_lines())
    deadline = time.monotonic() + 10  # 1000 tokens would take several seconds more
    with LlamaCppClient(backend.base_url, api_key=BACKEND_KEY) as client:
        while any(slot["is_processing"] for slot in client.slots()):
            assert time.monotonic() < deadline, "the backend still generates for nobody"
            time.sleep(0.1)


def test_metrics_split_the_time_to_first_token_into_the_gateways_stages(gateway: Server):
    """Each stage is a span between two moments inside the gateway, all within the span from
    the client sending to the client reading the first text: together, at most that."""
    before = read_histogram(gateway.base_url, STAGES, "stage", api_key=GATEWAY_KEY)
    client = openai.OpenAI(base_url=gateway.url("/v1"), api_key=GATEWAY_KEY)
    sent = time.monotonic()
    stream = client.chat.completions.create(
        model="any", messages=CAPITAL, max_tokens=8, stream=True, extra_body={"ignore_eos": True}
    )
    first_text = next(c for c in stream if c.choices and c.choices[0].delta.content)
    client_ttft = time.monotonic() - sent
    assert first_text.choices[0].delta.content
    stream.close()
    stages = read_histogram(gateway.base_url, STAGES, "stage", api_key=GATEWAY_KEY) - before
    assert stages.counts == dict.fromkeys(FIRST_TOKEN_STAGES, 1.0)  # one request, every stage
    assert 0 < sum(stages.sums.values()) <= client_ttft
    assert stages.sums["model"] > 0  # the backend's prefill and first step
