"""Ollama's native answers (``/api/generate``, ``/api/chat``) made from llama-server's.

The conversation gets the Modelfile's SYSTEM and MESSAGEs; the prompt is the model's chat
template (an Ollama TEMPLATE, or the GGUF's own applied by llama-server); the answer streams as
NDJSON, one object a line, the last with ``done: true`` and Ollama's timings in nanoseconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import anyio
import httpx
from fastapi.responses import JSONResponse, Response, StreamingResponse

from llmlab.http.streaming import StreamError, asse_json
from llmlab.ollama.modelfile import check_template, convert_parameter, render_template
from llmlab.ollama.options import json_schema, keep_alive_seconds, llama_options
from llmlab.ollama.runners import Runner, Runners
from llmlab.ollama.schemas import (
    ApiError,
    InferenceBody,
)
from llmlab.ollama.store import StoredModel
from llmlab.ollama.upstream import open_stream, upstream_failure, upstream_json

DEFAULT_NUM_CTX = 2048
NDJSON = "application/x-ndjson"
#: How a request's prompt is made once its runner is known (it may ask llama-server).
PromptFor = Callable[[Runner], Awaitable[str]]


def conversation(
    model: StoredModel, messages: list[dict[str, Any]], *, system: str | None = None
) -> list[dict[str, Any]]:
    """The Modelfile's MESSAGEs, then the request's; its SYSTEM (or ``system``) first, unless
    the conversation has a system message of its own."""
    chat = [*model.messages, *messages]
    system = model.system if system is None else system
    if system and not any(message["role"] == "system" for message in chat):
        chat.insert(0, {"role": "system", "content": system})
    return chat


def num_ctx(model: StoredModel, options: dict[str, Any]) -> int:
    value = options.get("num_ctx", model.parameters.get("num_ctx", DEFAULT_NUM_CTX))
    try:
        return convert_parameter("num_ctx", value)
    except ValueError as error:
        raise ApiError(400, f"option {error}") from None


def as_is(prompt: str) -> PromptFor:
    async def prompt_for(runner: Runner) -> str:
        return prompt

    return prompt_for


def templated(messages: list[dict[str, Any]], template: str | None) -> PromptFor:
    """The prompt for a chat: an Ollama TEMPLATE if the model has one, else the chat template
    in the GGUF file, applied by llama-server itself (``/apply-template``)."""

    async def prompt_for(runner: Runner) -> str:
        if template:
            try:
                check_template(template)
            except ValueError as error:
                raise ApiError(400, str(error)) from None
            return render_template(template, messages)
        return (await upstream_json(runner, "/apply-template", {"messages": messages}))["prompt"]

    return prompt_for


async def complete(
    runners: Runners,
    model: StoredModel,
    body: InferenceBody,
    prompt_for: PromptFor,
    *,
    chat: bool = True,
) -> Response:
    """Run one completion on the model's runner; stream NDJSON or answer with one object."""
    started = time.perf_counter()
    options = {**model.parameters, **body.options}
    payload = {**llama_options(options), "stream": True, "cache_prompt": True}
    payload |= json_schema(body.format)
    keep_alive = keep_alive_seconds(body.keep_alive)
    runner, load_s = await runners.acquire(model, num_ctx=num_ctx(model, body.options))
    try:
        payload["prompt"] = await prompt_for(runner)
        upstream = await open_stream(runner, "/completion", payload)
    except BaseException:
        await runners.release(runner, keep_alive)
        raise
    reply = Reply(body.model, chat=chat, started=started, load_s=load_s)

    async def chunks() -> AsyncIterator[dict[str, Any]]:
        try:
            async for piece in asse_json(upstream):
                if piece.get("content"):
                    yield reply.chunk(piece["content"])
                if piece.get("stop"):
                    yield reply.final(piece)
        finally:
            with anyio.CancelScope(shield=True):  # runs even when the client has gone away
                await upstream.aclose()  # closing the stream cancels the generation upstream
                await runners.release(runner, keep_alive)

    if body.stream:
        return StreamingResponse(ndjson_lines(chunks()), media_type=NDJSON)
    return JSONResponse(reply.whole([chunk async for chunk in chunks()]))


class Reply:
    """Ollama's answer shapes: ``message`` pieces for chat, ``response`` pieces for generate."""

    def __init__(self, model: str, *, chat: bool, started: float, load_s: float) -> None:
        self.model, self.chat, self.started, self.load_s = model, chat, started, load_s

    def chunk(self, text: str, *, done: bool = False) -> dict[str, Any]:
        content: dict[str, Any] = {"response": text}
        if self.chat:
            content = {"message": {"role": "assistant", "content": text}}
        return {"model": self.model, "created_at": now(), **content, "done": done}

    def final(self, last: dict[str, Any]) -> dict[str, Any]:
        timings = last.get("timings", {})
        return self.chunk("", done=True) | {
            "done_reason": "length" if last.get("stop_type") == "limit" else "stop",
            "total_duration": ns(time.perf_counter() - self.started),
            "load_duration": ns(self.load_s),
            "prompt_eval_count": last.get("tokens_evaluated", 0),
            "prompt_eval_duration": ns(timings.get("prompt_ms", 0) / 1000),
            "eval_count": timings.get("predicted_n", last.get("tokens_predicted", 0)),
            "eval_duration": ns(timings.get("predicted_ms", 0) / 1000),
        }

    def whole(self, chunks: list[dict[str, Any]]) -> dict[str, Any]:
        if not chunks or not chunks[-1]["done"]:
            raise ApiError(500, "llama-server ended the answer without finishing it")
        key = "message" if self.chat else "response"
        text = "".join(c["message"]["content"] if self.chat else c["response"] for c in chunks)
        whole = chunks[-1]
        whole[key] = {"role": "assistant", "content": text} if self.chat else text
        return whole


async def load_or_unload(
    runners: Runners, model: StoredModel, body: InferenceBody, *, chat: bool
) -> Response:
    """A request with nothing to answer loads the model, or with ``keep_alive: 0`` unloads it."""
    keep_alive = keep_alive_seconds(body.keep_alive)
    reply = Reply(body.model, chat=chat, started=0, load_s=0).chunk("", done=True)
    if keep_alive == 0:
        await runners.unload_model(model.name)
        return JSONResponse(reply | {"done_reason": "unload"})
    runner, _ = await runners.acquire(model, num_ctx=num_ctx(model, body.options))
    await runners.release(runner, keep_alive)
    return JSONResponse(reply | {"done_reason": "load"})


async def ndjson_lines(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield json.dumps(chunk).encode() + b"\n"
    except (ApiError, httpx.HTTPError, StreamError) as error:  # the status has gone out
        message = error.message if isinstance(error, ApiError) else upstream_failure(error)
        yield json.dumps({"error": message}).encode() + b"\n"


def status_reply(statuses: list[str], *, stream: bool) -> Response:
    if not stream:
        return JSONResponse({"status": statuses[-1]})
    lines = (json.dumps({"status": status}) + "\n" for status in statuses)
    return StreamingResponse(lines, media_type=NDJSON)


def now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def ns(seconds: float) -> int:
    return int(seconds * 1e9)
