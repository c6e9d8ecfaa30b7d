"""``/v1/...``: Ollama's OpenAI-compatible endpoints, passed to llama-server's own, with the
Modelfile applied (its SYSTEM and MESSAGEs, its PARAMETERs as defaults)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import anyio
from fastapi.responses import Response, StreamingResponse

from llmlab.ollama.answers import conversation, num_ctx
from llmlab.ollama.runners import Runners
from llmlab.ollama.schemas import OpenAIBody, OpenAIChatBody
from llmlab.ollama.store import ModelStore
from llmlab.ollama.upstream import open_stream

#: Modelfile PARAMETERs that OpenAI-style requests may leave unset, by their OpenAI names.
OPENAI_DEFAULTS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "seed": "seed",
    "stop": "stop",
    "repeat_penalty": "repeat_penalty",
    "num_predict": "max_tokens",
}


async def openai_proxy(
    runners: Runners, store: ModelStore, body: OpenAIBody, path: str
) -> Response:
    """``/v1/...`` goes to llama-server's own OpenAI endpoint, with the Modelfile applied."""
    model = await asyncio.to_thread(store.get, body.model)
    defaults = {OPENAI_DEFAULTS[k]: v for k, v in model.parameters.items() if k in OPENAI_DEFAULTS}
    payload = defaults | body.model_dump(exclude_none=True) | {"model": model.name}
    context = num_ctx(model, {})
    if body.max_tokens is not None:  # Ollama's bound: at most 10 contexts, negative included
        limit = 10 * context
        payload["max_tokens"] = min(body.max_tokens, limit) if body.max_tokens >= 0 else limit
    if isinstance(body, OpenAIChatBody):
        payload["messages"] = conversation(model, payload["messages"])
    runner, _ = await runners.acquire(model, num_ctx=context)
    try:
        upstream = await open_stream(runner, path, payload)
    except BaseException:
        await runners.release(runner)
        raise
    if not body.stream:
        try:
            content = await upstream.aread()
        finally:
            await upstream.aclose()
            await runners.release(runner)
        return Response(content, media_type="application/json")

    async def events() -> AsyncIterator[bytes]:
        try:
            async for raw in upstream.aiter_raw():
                yield raw
        finally:
            with anyio.CancelScope(shield=True):
                await upstream.aclose()
                await runners.release(runner)

    return StreamingResponse(events(), media_type="text/event-stream")
