"""The course's FastAPI service, run by a real uvicorn process and driven over HTTP."""

import asyncio
import os
import signal
import time

import httpx
import openai
import psutil
import pytest

from llmlab.bench.records import BenchmarkError
from llmlab.bench.timeline import Arrival, arrivals_timeline, chat_timeline
from llmlab.prompts import chat
from llmlab.servers import Server
from llmlab.servers.service import NAIVE, service_server

pytestmark = pytest.mark.server

API_KEY = "sk-service-test"
CAPITAL = chat("What is the capital of France?")


@pytest.fixture(scope="module")
def server():
    with service_server(api_key=API_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def http(server: Server):
    with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=120) as client:
        yield client


def test_health_reports_ready_with_the_model(http: httpx.Client):
    assert http.get("/health").json() == {"status": "ready", "model": "SmolLM2-135M-Instruct"}


def test_chat_uses_the_template_and_reports_usage(http: httpx.Client):
    body = http.post("/chat", json={"messages": CAPITAL, "temperature": 0, "max_tokens": 32}).json()
    usage = body["usage"]
    assert usage["prompt_tokens"] == 27  # the chat through SmolLM2's template, system included
    assert 0 < usage["completion_tokens"] < 32 and body["finish_reason"] == "stop"
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert body["text"].strip()  # what it says depends on the CPU's arithmetic


def test_generate_continues_text(http: httpx.Client):
    body = http.post("/generate", json={"prompt": "The capital of France is", "temperature": 0,
                                        "max_tokens": 3}).json()  # fmt: skip
    assert body["text"].strip() and body["finish_reason"] == "length"
    assert (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]) == (5, 3)


def test_the_openai_client_chats_and_streams(server: Server):
    client = openai.OpenAI(base_url=server.url("/v1"), api_key=API_KEY)
    assert [m.id for m in client.models.list()] == [server.model]
    whole = client.chat.completions.create(
        model=server.model, messages=CAPITAL, temperature=0, max_tokens=32
    )
    assert whole.choices[0].message.content.strip() and whole.usage.prompt_tokens == 27
    chunks = list(client.chat.completions.create(
        model=server.model, messages=CAPITAL, temperature=0, max_tokens=32, stream=True,
        stream_options={"include_usage": True},
    ))  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    completion = client.completions.create(
        model=server.model, prompt="The capital of France is", temperature=0, max_tokens=3
    )
    assert completion.choices[0].text.strip() and completion.usage.completion_tokens == 3


async def requests_running(client: httpx.AsyncClient) -> int:
    """The engine's own gauge: requests generating right now."""
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith("llmlab_requests_running "):
            return int(float(line.split()[1]))
    raise AssertionError("no llmlab_requests_running in /metrics")


def test_concurrent_requests_are_served_together(server: Server):
    """16 requests at once share the model's batches: the engine generates many rows per step
    (read from its own gauge while they run, not timed)."""

    async def main() -> tuple[list[httpx.Response], int]:
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=server.headers, timeout=120
        ) as client:
            body = {"messages": CAPITAL, "max_tokens": 24, "ignore_eos": True}
            burst = asyncio.ensure_future(
                asyncio.gather(*(client.post("/chat", json=body) for _ in range(16)))
            )
            most_running = 0
            while not burst.done():
                most_running = max(most_running, await requests_running(client))
                await asyncio.sleep(0.05)  # how often to look, not something to wait for
            return burst.result(), most_running

    responses, most_running = asyncio.run(main())
    assert [r.json()["usage"]["completion_tokens"] for r in responses] == [24] * 16
    assert most_running >= 8, f"at most {most_running} requests generated together"


def test_a_timeline_of_chats_sent_at_once(server: Server):
    timeline = asyncio.run(chat_timeline(server, requests=3, max_tokens=8))
    frame = timeline.requests
    assert list(frame.index) == [0, 1, 2]
    assert (frame["answered"] > frame["sent"]).all()
    assert frame["sent"].max() < frame["answered"].min()  # all three sent before any answer
    assert timeline.slowest_health_s > 0  # /health was asked while they ran


def test_a_timeline_of_streamed_chats_sent_at_chosen_moments(server: Server):
    arrivals = [Arrival(0, 8), Arrival(0.5, 4)]
    frame = asyncio.run(arrivals_timeline(server.url("/v1"), server.model, arrivals,
                                          api_key=API_KEY))  # fmt: skip
    assert frame["tokens"].tolist() == [8, 4]
    assert frame.loc[1, "sent"] > 0.45 > frame.loc[0, "sent"]  # sent when asked, not at once
    assert (frame["sent"] < frame["first token"]).all()
    assert (frame["first token"] <= frame["done"]).all()


def test_a_timeline_with_a_failed_request_raises_instead_of_leaving_a_hole(server: Server):
    with pytest.raises(BenchmarkError, match="the request sent at 0 s"):
        asyncio.run(arrivals_timeline(server.url("/v1"), server.model, [Arrival(0, 4)]))  # no key


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": CAPITAL, "max_token": 5}, "max_token"),  # a typo is not ignored
        ({"messages": [{"role": "robot", "content": "hi"}]}, "role"),
        ({"messages": CAPITAL, "max_tokens": 100_000}, "max_tokens"),
        ({"messages": CAPITAL, "temperature": 5}, "temperature"),
        ({"messages": []}, "messages"),
    ],
)
def test_bad_bodies_get_a_422_naming_the_field(http: httpx.Client, body, field):
    response = http.post("/chat", json=body)
    assert response.status_code == 422
    assert field in str(response.json()["detail"])


def test_a_prompt_over_the_token_limit_is_a_400(http: httpx.Client):
    response = http.post("/chat", json={"messages": chat("word " * 2000)})
    assert response.status_code == 400
    assert "this service accepts at most 1536" in response.json()["detail"]


def test_the_api_key_is_required_and_checked(server: Server):
    body = {"messages": CAPITAL, "max_tokens": 4}
    assert httpx.post(server.url("/chat"), json=body).status_code == 401
    wrong = {"Authorization": "Bearer sk-wrong"}
    assert httpx.post(server.url("/chat"), json=body, headers=wrong).status_code == 403
    assert httpx.get(server.url("/health")).status_code == 200


def test_the_api_key_is_not_on_the_command_line(server: Server):
    # Any user of the machine reads every process's arguments (`ps -eo args`).
    assert API_KEY not in " ".join(psutil.Process(server.started_process.pid).cmdline())


def test_the_source_chapters_server_refuses_a_key_it_cannot_check():
    with pytest.raises(ValueError, match="no API key"):
        service_server(module=NAIVE, api_key=API_KEY)


def test_metrics_count_requests_and_tokens(http: httpx.Client):
    http.post("/chat", json={"messages": CAPITAL, "temperature": 0, "max_tokens": 8})
    text = http.get("/metrics").text
    assert 'llmlab_requests_total{endpoint="chat",outcome="ok"}' in text
    assert 'llmlab_tokens_total{kind="completion"}' in text
    assert "llmlab_queue_depth 0.0" in text


def test_a_client_that_disconnects_stops_its_generation(server: Server, http: httpx.Client):
    body = {"model": server.model, "messages": chat("Write a very long story."),
            "max_tokens": 1000, "stream": True}  # fmt: skip
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        next(response.iter_lines())  # the first event arrived: generation is running
    deadline = time.monotonic() + 10  # 1000 tokens would take a minute
    while "llmlab_requests_running 0.0" not in http.get("/metrics").text:
        assert time.monotonic() < deadline, "generation went on after the client left"
        time.sleep(0.2)


def test_a_full_queue_answers_429_with_retry_after():
    with service_server("--max-queue", "1", "--max-batch-size", "1") as small:

        async def main() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=small.base_url, timeout=120) as client:
                body = {"messages": CAPITAL, "max_tokens": 64, "temperature": 0}
                return await asyncio.gather(*(client.post("/chat", json=body) for _ in range(6)))

        responses = asyncio.run(main())
    statuses = sorted(r.status_code for r in responses)
    assert 200 in statuses and 429 in statuses
    busy = next(r for r in responses if r.status_code == 429)
    assert busy.headers["Retry-After"] == "1"


def test_shutdown_lets_the_request_in_flight_finish():
    with service_server() as server:

        async def main() -> httpx.Response:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as client:
                body = {"messages": CAPITAL, "max_tokens": 48, "temperature": 0,
                        "ignore_eos": True}  # fmt: skip
                answer = asyncio.create_task(client.post("/chat", json=body))
                deadline = time.monotonic() + 60
                while await requests_running(client) == 0:  # until the answer is being written
                    assert time.monotonic() < deadline and not answer.done()
                    await asyncio.sleep(0.05)
                os.killpg(server.process.pid, signal.SIGTERM)  # what `docker stop` sends
                return await answer

        response = asyncio.run(main())
    assert response.status_code == 200
    assert response.json()["usage"]["completion_tokens"] == 48
