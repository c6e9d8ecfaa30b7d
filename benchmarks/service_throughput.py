"""The source chapter's FastAPI server against the course's service, 16 clients at once.

Run by hand from the repository root (not a test: shared machines are noisy):

    .venv/bin/python -m benchmarks.service_throughput [--clients 16] [--max-tokens 64]

Both servers run the default model in process. Each of the clients sends one chat at the same
moment, greedy, every answer forced to exactly --max-tokens tokens. The course's service streams
(``/v1/chat/completions``, SSE), so time to first token is when the first content arrives; the
naive server cannot stream, so its first token arrives with the whole answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time

import httpx
from httpx_sse import aconnect_sse

from llmlab.prompts import sample_chats
from llmlab.servers import Server


async def naive_request(client: httpx.AsyncClient, messages: list, max_tokens: int) -> float:
    body = {"messages": messages, "temperature": 0, "max_tokens": max_tokens, "ignore_eos": True}
    sent = time.perf_counter()
    (await client.post("/chat", json=body)).raise_for_status()
    return time.perf_counter() - sent


async def streaming_request(client: httpx.AsyncClient, messages: list, max_tokens: int) -> float:
    body = {"model": "any", "messages": messages, "temperature": 0, "max_tokens": max_tokens,
            "ignore_eos": True, "stream": True}  # fmt: skip
    sent, first = time.perf_counter(), None
    async with aconnect_sse(client, "POST", "/v1/chat/completions", json=body) as source:
        source.response.raise_for_status()
        async for event in source.aiter_sse():
            if event.data == "[DONE]":
                break
            choices = json.loads(event.data)["choices"]
            if first is None and choices and choices[0]["delta"].get("content"):
                first = time.perf_counter() - sent
    return first


async def drive(server: Server, request, clients: int, max_tokens: int) -> tuple[float, float]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=600) as client:
        await request(client, sample_chats(1)[0], 4)  # warm up
        started = time.perf_counter()
        ttfts = await asyncio.gather(
            *(request(client, chat, max_tokens) for chat in sample_chats(clients))
        )
        seconds = time.perf_counter() - started
    return clients * max_tokens / seconds, statistics.median(ttfts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    python = [sys.executable, "-m"]
    runs = {
        "source chapter (naive)": (["llmlab.service.naive"], naive_request),
        "course service": (["llmlab.service"], streaming_request),
    }
    figures = {}
    for name, (module, request) in runs.items():
        command = [*python, *module, "--host", "{host}", "--port", "{port}"]
        with Server(command, name=module[0].replace(".", "-"), startup_timeout_s=300) as server:
            figures[name] = asyncio.run(drive(server, request, args.clients, args.max_tokens))
    print(f"{args.clients} clients at once, {args.max_tokens} tokens each\n")
    print(f"{'server':24s} {'output tok/s':>13s} {'p50 TTFT (s)':>13s}")
    for name, (throughput, ttft) in figures.items():
        print(f"{name:24s} {throughput:13.1f} {ttft:13.2f}")
    (naive, _), (course, _) = figures.values()
    print(f"\ncourse service / naive: {course / naive:.1f}x output tokens/s")


if __name__ == "__main__":
    main()
