"""Send many requests to an OpenAI-compatible server at once: the source chapter's
``AsyncBatchClient``, done right.

The source chapter fires every request together with ``asyncio.gather`` and a 300 s timeout,
so 1,000 prompts open 1,000 connections, one failure raises away all the other results, and a
busy server's 429 or a restart's connection error is final. This client:

* caps the requests in flight (``concurrency``); the rest wait their turn;
* retries what is worth retrying (connection errors, timeouts, 429, 5xx) with exponential
  backoff, honouring ``Retry-After``; a 4xx such as "prompt too long" is not retried;
* returns one ``RequestResult`` per request, in input order, each with its text and usage or
  its error, so one bad request costs one result, not the batch;
* shows a progress bar.

It does not time requests: measuring them is the benchmark harness's job (``llmlab.bench``),
where a request is timed from the moment it is sent, not from when it got a slot. (The official
``openai.AsyncOpenAI`` retries in the same way; this client shows how, on plain ``httpx``.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from tqdm.auto import tqdm

from llmlab.errors import LLMLabError
from llmlab.http.common import LIMITS, bearer, error_message
from llmlab.messages import Message

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 30.0


@dataclass(frozen=True)
class RequestResult:
    """The outcome of one request: text and usage, or the error that ended it."""

    index: int
    text: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None


class RequestFailed(LLMLabError):
    """A request that failed for good, after any retries."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class AsyncBatchClient:
    """Concurrent, retrying requests to ``base_url`` (an OpenAI-style URL ending in ``/v1``)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self.model = model
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout_s,
            headers=bearer(api_key),
            transport=transport,
            limits=LIMITS,
        )

    async def __aenter__(self) -> AsyncBatchClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(self, prompt: str | Sequence[Message], **params: Any) -> dict[str, Any]:
        """One completion (a string prompt) or chat completion (a list of messages), retried.

        Returns the response body; raises ``RequestFailed`` when it failed for good.
        """
        body, _ = await self._send(prompt, params)
        return body

    async def _send(
        self, prompt: str | Sequence[Message], params: dict[str, Any]
    ) -> tuple[dict[str, Any], int]:
        body: dict[str, Any]
        if isinstance(prompt, str):
            path, body = "/completions", {"prompt": prompt}
        else:
            path, body = "/chat/completions", {"messages": list(prompt)}
        body = {"model": self.model, **body, **params}
        for attempt in range(1, self.max_retries + 2):
            try:
                response = await self._http.post(path, json=body)
            except httpx.TransportError as error:  # refused, reset, timed out
                problem, wait_s = f"{type(error).__name__}: {error}", self._backoff(attempt)
            else:
                if response.is_success:
                    return response.json(), attempt
                problem = f"HTTP {response.status_code}: {error_message(response)}"
                if response.status_code not in RETRY_STATUSES:
                    raise RequestFailed(problem, attempt)
                wait_s = _retry_after(response) or self._backoff(attempt)
            if attempt > self.max_retries:
                raise RequestFailed(f"{problem} (gave up after {attempt} attempts)", attempt)
            await asyncio.sleep(wait_s)
        raise AssertionError("unreachable")

    async def run(
        self, prompts: Sequence[str | Sequence[Message]], *, progress: bool = True, **params: Any
    ) -> list[RequestResult]:
        """Send every prompt, ``concurrency`` at a time; results in the order of ``prompts``."""
        slots = asyncio.Semaphore(self.concurrency)
        bar = tqdm(total=len(prompts), desc="Requests", unit="req", disable=not progress)

        async def one(index: int, prompt: str | Sequence[Message]) -> RequestResult:
            async with slots:
                try:
                    body, attempts = await self._send(prompt, params)
                except RequestFailed as failure:
                    result = RequestResult(index, error=str(failure), attempts=failure.attempts)
                else:
                    result = _result(index, body, attempts)
            bar.update()
            return result

        with bar:
            return list(await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts))))

    def _backoff(self, attempt: int) -> float:
        return self.backoff_s * 2 ** (attempt - 1)


def _result(index: int, body: dict[str, Any], attempts: int) -> RequestResult:
    choice = body["choices"][0]
    text = choice["message"]["content"] if "message" in choice else choice["text"]
    usage = body.get("usage") or {}
    return RequestResult(
        index,
        text=text,
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=usage.get("prompt_tokens", 0),
        completion_tokens=usage.get("completion_tokens", 0),
        attempts=attempts,
    )


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return min(float(response.headers["Retry-After"]), MAX_RETRY_AFTER_S)
    except (KeyError, ValueError):
        return None
