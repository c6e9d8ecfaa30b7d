"""Put a chat server under load at several concurrency levels and measure it.

Every level sends the same kind of work: the sample chats, greedy, each answer forced to exactly
``max_tokens`` tokens with ``ignore_eos`` (vLLM, llama-server and the course's service accept
it). Output tokens/s is all completion tokens over the wall time of the level; latency is per
request, from sending to the whole answer; time to first token (TTFT, streaming only) is from
sending to the first chunk that carries text, as vLLM's serving benchmark defines it.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx
from httpx_sse import aconnect_sse
from tqdm.auto import tqdm

from llmlab.clients.http import LIMITS, bearer, stream_headers
from llmlab.generation import Message
from llmlab.prompts import sample_chats

#: Sends one chat; returns the tokens in the answer and, when streaming, the time to first token.
Send = Callable[[httpx.AsyncClient, list[Message]], Awaitable[tuple[int, float | None]]]


@dataclass(frozen=True)
class LoadLevel:
    concurrency: int
    requests: int
    seconds: float
    output_tokens: int
    latencies_s: tuple[float, ...]
    ttfts_s: tuple[float, ...] = ()

    @property
    def tokens_per_second(self) -> float:
        return self.output_tokens / self.seconds

    def row(self) -> dict[str, float]:
        """The figures a table shows, named with their units."""
        # "inclusive": percentiles stay within the measured values, as numpy.percentile does
        percentiles = statistics.quantiles(self.latencies_s, n=100, method="inclusive")
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "output tokens/s": self.tokens_per_second,
            "latency p50 (s)": statistics.median(self.latencies_s),
            "latency p90 (s)": percentiles[89],
            "latency p95 (s)": percentiles[94],
        } | ({"TTFT p50 (s)": statistics.median(self.ttfts_s)} if self.ttfts_s else {})


def openai_chat(model: str, max_tokens: int = 64) -> Send:
    """``POST /chat/completions`` under an OpenAI-style base URL (ending in ``/v1``)."""

    async def send(client: httpx.AsyncClient, messages: list[Message]) -> int:
        body = {"model": model, "messages": messages, "temperature": 0,
                "max_tokens": max_tokens, "ignore_eos": True}  # fmt: skip
        response = await client.post("/chat/completions", json=body)
        response.raise_for_status()
        return response.json()["usage"]["completion_tokens"], None

    return send


def openai_chat_stream(model: str, max_tokens: int = 64) -> Send:
    """Like ``openai_chat``, streamed (SSE), timing the first chunk that carries text."""

    async def send(client: httpx.AsyncClient, messages: list[Message]) -> tuple[int, float]:
        body = {"model": model, "messages": messages, "temperature": 0, "max_tokens": max_tokens,
                "ignore_eos": True, "stream": True,
                "stream_options": {"include_usage": True}}  # fmt: skip
        sent, first, tokens = time.perf_counter(), None, 0
        async with aconnect_sse(
            client, "POST", "/chat/completions", json=body, headers=stream_headers()
        ) as source:
            source.response.raise_for_status()
            async for event in source.aiter_sse():
                if event.data == "[DONE]":
                    break
                chunk = json.loads(event.data)
                choices = chunk.get("choices") or []
                if first is None and choices and choices[0]["delta"].get("content"):
                    first = time.perf_counter() - sent
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
        return tokens, first

    return send


def course_chat(max_tokens: int = 64) -> Send:
    """``POST /chat``, the source chapter's endpoint. Its original version returns an empty
    ``usage``; with ``ignore_eos`` every answer is exactly ``max_tokens`` long, so count that."""

    async def send(client: httpx.AsyncClient, messages: list[Message]) -> int:
        body = {"messages": messages, "temperature": 0, "max_tokens": max_tokens,
                "ignore_eos": True}  # fmt: skip
        response = await client.post("/chat", json=body)
        response.raise_for_status()
        return response.json()["usage"].get("completion_tokens", max_tokens), None

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
        base_url=base_url.rstrip("/"), headers=bearer(api_key), timeout=timeout_s, limits=LIMITS
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

    async def one(messages: list[Message]) -> tuple[int, float, float | None]:
        async with slots:
            sent = time.perf_counter()
            tokens, ttft = await send(client, messages)
            return tokens, time.perf_counter() - sent, ttft

    started = time.perf_counter()
    answers = await asyncio.gather(*(one(messages) for messages in workload))
    seconds = time.perf_counter() - started
    tokens, latencies, ttfts = zip(*answers, strict=True)
    streamed = tuple(ttft for ttft in ttfts if ttft is not None)
    return LoadLevel(concurrency, len(answers), seconds, sum(tokens), latencies, streamed)


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
