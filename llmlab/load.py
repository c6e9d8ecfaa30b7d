"""Put a chat server under load at several concurrency levels and measure it.

Every level sends the same kind of work: the sample chats, greedy, each answer forced to exactly
``max_tokens`` tokens with ``ignore_eos`` (vLLM, llama-server and the course's service accept
it). Output tokens/s is all completion tokens over the wall time of the level; latency is per
request, from sending to the whole answer. (Streaming figures such as time to first token come
with the benchmark harness of the exercises.)
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx
from tqdm.auto import tqdm

from llmlab.clients.http import bearer
from llmlab.generation import Message
from llmlab.prompts import sample_chats

#: Sends one chat and returns the number of tokens in the answer.
Send = Callable[[httpx.AsyncClient, list[Message]], Awaitable[int]]


@dataclass(frozen=True)
class LoadLevel:
    concurrency: int
    requests: int
    seconds: float
    output_tokens: int
    latencies_s: tuple[float, ...]

    @property
    def tokens_per_second(self) -> float:
        return self.output_tokens / self.seconds

    def row(self) -> dict[str, float]:
        """The figures a table shows, named with their units."""
        deciles = statistics.quantiles(self.latencies_s, n=10)
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "output tokens/s": self.tokens_per_second,
            "latency p50 (s)": statistics.median(self.latencies_s),
            "latency p90 (s)": deciles[-1],
        }


def openai_chat(model: str, max_tokens: int = 64) -> Send:
    """``POST /chat/completions`` under an OpenAI-style base URL (ending in ``/v1``)."""

    async def send(client: httpx.AsyncClient, messages: list[Message]) -> int:
        body = {"model": model, "messages": messages, "temperature": 0,
                "max_tokens": max_tokens, "ignore_eos": True}  # fmt: skip
        response = await client.post("/chat/completions", json=body)
        response.raise_for_status()
        return response.json()["usage"]["completion_tokens"]

    return send


def course_chat(max_tokens: int = 64) -> Send:
    """``POST /chat``, the source chapter's endpoint. Its original version returns an empty
    ``usage``; with ``ignore_eos`` every answer is exactly ``max_tokens`` long, so count that."""

    async def send(client: httpx.AsyncClient, messages: list[Message]) -> int:
        body = {"messages": messages, "temperature": 0, "max_tokens": max_tokens,
                "ignore_eos": True}  # fmt: skip
        response = await client.post("/chat", json=body)
        response.raise_for_status()
        return response.json()["usage"].get("completion_tokens", max_tokens)

    return send


async def sweep(
    base_url: str,
    send: Send,
    *,
    api_key: str | None = None,
    levels: Sequence[int] = (1, 4, 16),
    min_requests: int = 8,
    timeout_s: float = 600,
) -> list[LoadLevel]:
    """Run ``max(min_requests, 2 x concurrency)`` chats at each level, after one warm-up."""
    results = []
    async with httpx.AsyncClient(
        base_url=base_url.rstrip("/"), headers=bearer(api_key), timeout=timeout_s
    ) as client:
        await send(client, sample_chats(1)[0])
        for concurrency in tqdm(levels, desc="Concurrency levels", unit="level"):
            workload = sample_chats(max(min_requests, 2 * concurrency))
            results.append(await _level(client, send, workload, concurrency))
    return results


async def _level(
    client: httpx.AsyncClient, send: Send, workload: list[list[Message]], concurrency: int
) -> LoadLevel:
    slots = asyncio.Semaphore(concurrency)

    async def one(messages: list[Message]) -> tuple[int, float]:
        async with slots:
            sent = time.perf_counter()
            tokens = await send(client, messages)
            return tokens, time.perf_counter() - sent

    started = time.perf_counter()
    answers = await asyncio.gather(*(one(messages) for messages in workload))
    seconds = time.perf_counter() - started
    tokens, latencies = zip(*answers, strict=True)
    return LoadLevel(concurrency, len(answers), seconds, sum(tokens), latencies)


async def sweep_concurrency(
    base_url: str,
    model: str,
    *,
    api_key: str | None = None,
    levels: Sequence[int] = (1, 4, 16),
    max_tokens: int = 64,
) -> list[LoadLevel]:
    """``sweep`` an OpenAI-compatible server (``base_url`` ends in ``/v1``)."""
    return await sweep(base_url, openai_chat(model, max_tokens), api_key=api_key, levels=levels)
