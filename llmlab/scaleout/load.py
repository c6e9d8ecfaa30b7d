"""Send chats through a router with the benchmark harness, and count what each replica served.

Each request is the harness's (``llmlab.bench``: one timing loop for the whole course), and its
``RequestRecord`` keeps what the experiments read: which replica wrote the answer (the
``model`` field: ``replicas`` gives each its own alias), the prompt tokens the replica took
from its cache, and, for a failed request, whether the answer had started (a router can retry a
request that has not started, never one that has).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from llmlab import bench
from llmlab.bench import Chat, OpenAIChat, RequestRecord
from llmlab.messages import Message
from llmlab.prompts import sample_chats
from llmlab.scaleout.replicas import replica_work
from llmlab.scaleout.router import SESSION_HEADER, Router
from llmlab.servers import Server


def chat_target(server: Server, *, max_tokens: int = 8, stream: bool = True) -> OpenAIChat:
    """Greedy chats of exactly ``max_tokens`` tokens (``ignore_eos``) to ``server``'s
    ``/v1/chat/completions``, with its API key."""
    return OpenAIChat(
        server.url("/v1"), server.model or "default", max_tokens=max_tokens, stream=stream,
        api_key=server.api_key, timeout_s=300, name=server.name,
    )  # fmt: skip


async def ask_all(
    server: Server,
    chats: Sequence[Sequence[Message]],
    *,
    concurrency: int = 4,
    max_tokens: int = 8,
    stream: bool = True,
    headers: Callable[[int], dict[str, str]] | None = None,
) -> list[RequestRecord]:
    """Send every chat to ``server``, ``concurrency`` at a time, and return each request's
    record in order (a failure is recorded, never raised); ``headers(i)`` adds headers to the
    i-th request."""
    workload = [Chat(chat, headers(i) if headers else {}) for i, chat in enumerate(chats)]
    target = chat_target(server, max_tokens=max_tokens, stream=stream)
    result = await bench.run(
        target, workload, concurrency=concurrency, warmup=False, progress=False
    )
    return list(result.records)


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

    records = await ask_all(
        router, sample_chats(requests), concurrency=concurrency, max_tokens=max_tokens,
        stream=stream, headers=headers,
    )  # fmt: skip
    failed = [r.failure for r in records if r.failure is not None]
    if failed:
        raise RuntimeError(f"{len(failed)} of {requests} requests failed, e.g. {failed[0]}")
    return [
        (after - start).requests(max_tokens)
        for after, start in zip(replica_work(servers), before, strict=True)
    ]
