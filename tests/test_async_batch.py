"""The async batch client's retry and error rules, on scripted HTTP answers.

A scripted transport is used here only for edge cases a real server will not produce on
demand (a 429, a 503, a dropped connection); tests/test_vllm.py drives the same client against
a real vLLM server.
"""

import asyncio

import httpx
import pytest

from llmlab.http import AsyncBatchClient

OK = {
    "choices": [{"message": {"content": "Paris"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 2},
}
CHAT = [{"role": "user", "content": "Capital of France?"}]


def scripted(*answers):
    """A transport that gives these answers in turn (an int is a status, an exception is raised)."""
    calls = []

    def handle(request: httpx.Request) -> httpx.Response:
        answer = answers[min(len(calls), len(answers) - 1)]
        calls.append(request)
        if isinstance(answer, Exception):
            raise answer
        if answer == 200:
            return httpx.Response(200, json=OK)
        if answer == 429:
            return httpx.Response(429, headers={"Retry-After": "0"}, json={"error": "busy"})
        return httpx.Response(answer, json={"error": {"message": f"status {answer}"}})

    return httpx.MockTransport(handle), calls


def run(transport, prompts=(CHAT,), **options):
    async def main():
        options.setdefault("backoff_s", 0)
        async with AsyncBatchClient("http://x/v1", "m", transport=transport, **options) as client:
            return await client.run(list(prompts), progress=False)

    return asyncio.run(main())


def test_a_429_is_retried_after_retry_after():
    transport, calls = scripted(429, 200)
    [result] = run(transport)
    assert (result.ok, result.text, result.attempts) == (True, "Paris", 2)
    assert len(calls) == 2


def test_a_dropped_connection_is_retried():
    transport, _ = scripted(httpx.ConnectError("refused"), 200)
    [result] = run(transport)
    assert result.ok and result.attempts == 2


def test_a_server_error_that_persists_gives_up_with_the_reason():
    transport, calls = scripted(503)
    [result] = run(transport, max_retries=2)
    assert not result.ok
    assert result.error == "HTTP 503: status 503 (gave up after 3 attempts)"
    assert len(calls) == 3


def test_a_client_error_is_not_retried():
    transport, calls = scripted(400)
    [result] = run(transport)
    assert (result.error, result.attempts, len(calls)) == ("HTTP 400: status 400", 1, 1)


def test_usage_and_finish_reason_are_kept():
    transport, _ = scripted(200)
    [result] = run(transport)
    assert (result.prompt_tokens, result.completion_tokens, result.finish_reason) == (9, 2, "stop")


def test_a_string_prompt_goes_to_completions_and_a_chat_to_chat_completions():
    transport, calls = scripted(200)
    run(transport, prompts=["Once upon a time", CHAT])
    assert sorted(call.url.path for call in calls) == ["/v1/chat/completions", "/v1/completions"]
    assert all(call.headers.get("authorization") is None for call in calls)


def test_no_more_than_concurrency_requests_are_in_flight():
    in_flight, most = 0, 0

    async def handle(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200, json=OK)

    results = run(httpx.MockTransport(handle), prompts=[CHAT] * 20, concurrency=3)
    assert [r.index for r in results] == list(range(20))
    assert most == 3


def test_concurrency_below_one_is_refused():
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        AsyncBatchClient("http://x/v1", "m", concurrency=0)
