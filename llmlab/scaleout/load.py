"""Send chats through a router and record, per request, what the experiments need.

The benchmark harness (``llmlab.bench``) records timings; here each answer also keeps which
replica wrote it (the ``model`` field: ``replicas`` gives each its own alias), the prompt
tokens the replica took from its cache, and, for a failed request, whether any of the answer
had arrived (a router can retry a request that has not started, never one that has).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from llmlab.http.common import LIMITS, error_message, stream_headers
from llmlab.http.streaming import StreamError, asse_json
from llmlab.messages import Message
from llmlab.prompts import sample_chats
from llmlab.scaleout.replicas import replica_work
from llmlab.scaleout.router import SESSION_HEADER, Router
from llmlab.servers import Server


@dataclass
class Answer:
    """One request as the client saw it. Times are ``time.perf_counter()`` seconds."""

    sent_s: float
    #: When the answer started: its status line and headers arrived, and said success (None:
    #: it never did). From then on the router has committed to this worker and cannot retry.
    first_byte_s: float | None = None
    #: When the first chunk with text arrived.
    first_token_s: float | None = None
    #: The replica that wrote it (its alias, from the answer's ``model`` field).
    replica: str | None = None
    text: str = ""
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    finished: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.finished and self.error is None

    @property
    def failed_before_first_byte(self) -> bool:
        return not self.ok and self.first_byte_s is None

    @property
    def failed_mid_stream(self) -> bool:
        return not self.ok and self.first_byte_s is not None

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token_s is None else self.first_token_s - self.sent_s


async def ask(
    client: httpx.AsyncClient,
    url: str,
    messages: Sequence[Message],
    *,
    model: str = "default",
    max_tokens: int = 8,
    stream: bool = True,
    headers: dict[str, str] | None = None,
) -> Answer:
    """Send one greedy chat to ``url`` (``.../v1/chat/completions``), ``max_tokens`` long
    (``ignore_eos``), and record it; a failure is recorded, never raised."""
    body = {"model": model, "messages": list(messages), "temperature": 0,
            "max_tokens": max_tokens, "ignore_eos": True, "stream": stream}  # fmt: skip
    if stream:
        body["stream_options"] = {"include_usage": True}
    answer = Answer(sent_s=time.perf_counter())
    try:
        async with client.stream(
            "POST", url, json=body, headers=(headers or {}) | stream_headers()
        ) as response:
            if response.is_error:
                await response.aread()
                answer.error = f"HTTP {response.status_code}: {error_message(response)}"
                return answer
            answer.first_byte_s = time.perf_counter()
            if stream:
                async for chunk in asse_json(response):
                    _read_chunk(answer, chunk, done=False)
            else:
                _read_chunk(answer, json.loads(await response.aread()), done=True)
        if not answer.finished:
            answer.error = "the answer ended before it was complete"
    except (httpx.HTTPError, ValueError, StreamError) as error:
        answer.error = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return answer


def _read_chunk(answer: Answer, chunk: dict, *, done: bool) -> None:
    now = time.perf_counter()
    answer.replica = chunk.get("model", answer.replica)
    choice = (chunk.get("choices") or [{}])[0]
    text = (choice.get("delta") or choice.get("message") or {}).get("content")
    if text:
        answer.first_token_s = answer.first_token_s or now
        answer.text += text
    usage = chunk.get("usage")
    if usage:
        answer.prompt_tokens = usage.get("prompt_tokens")
        answer.cached_tokens = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    # A stream is complete once a choice says why it ended (the usage chunk may follow).
    answer.finished = answer.finished or done or bool(choice.get("finish_reason"))


async def ask_all(
    server: Server,
    chats: Sequence[Sequence[Message]],
    *,
    concurrency: int = 4,
    max_tokens: int = 8,
    stream: bool = True,
    headers: Callable[[int], dict[str, str]] | None = None,
) -> list[Answer]:
    """Send every chat to ``server``'s ``/v1/chat/completions``, ``concurrency`` at a time;
    ``headers(i)`` adds headers to the i-th request."""
    slots = asyncio.Semaphore(concurrency)
    url = server.url("/v1/chat/completions")

    async def one(i: int, chat: Sequence[Message]) -> Answer:
        async with slots:
            extra = server.headers | (headers(i) if headers else {})
            return await ask(client, url, chat, model=server.model or "default",
                             max_tokens=max_tokens, stream=stream, headers=extra)  # fmt: skip

    async with httpx.AsyncClient(timeout=300, limits=LIMITS) as client:
        return await asyncio.gather(*(one(i, chat) for i, chat in enumerate(chats)))


async def requests_per_replica(
    router: Router,
    servers: Sequence[Server],
    requests: int = 16,
    *,
    session: str | Callable[[int], str] | None = None,
    concurrency: int = 4,
    max_tokens: int = 4,
    stream: bool = False,
) -> list[int]:
    """Send ``requests`` chats through ``router``, and count from each replica's own counters
    how many it served. ``session`` is the ``X-Session-ID`` of every request, or a function of
    the request's number (``consistent_hash`` keys on it).

    Not streamed by default: the router keeps its connections to the replicas open, and
    llama-server drops a connection reused right after a stream (chapter 06), so streamed
    requests are now and then retried on the other replica, which would blur the count.
    """
    before = replica_work(servers)

    def headers(i: int) -> dict[str, str]:
        if session is None:
            return {}
        return {SESSION_HEADER: session(i) if callable(session) else session}

    answers = await ask_all(
        router, sample_chats(requests), concurrency=concurrency, max_tokens=max_tokens,
        stream=stream, headers=headers,
    )  # fmt: skip
    failed = [a.error for a in answers if not a.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} of {requests} requests failed, e.g. {failed[0]}")
    return [
        (after - start).requests(max_tokens)
        for after, start in zip(replica_work(servers), before, strict=True)
    ]
