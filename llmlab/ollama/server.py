"""An Ollama-compatible HTTP server that runs its models on llama.cpp's ``llama-server``.

Ollama cannot be installed on every machine the course runs on, but its HTTP API can be served:
Ollama itself is a model store and a scheduler in front of llama.cpp. This app is the same in
small, so the chapter runs unchanged against a real Ollama or this one, checked with the official
``ollama`` Python client:

* models are made from a Modelfile (``/api/create``; Ollama has no ``save``, whatever the source
  chapter says), listed, shown, copied and deleted (``store.py``);
* the first request for a model starts a llama-server for it, which stops ``keep_alive`` after
  the last request (``runners.py``);
* ``/api/chat`` formats the whole conversation, system message included, with the model's chat
  template: the source chapter's client flattened it into ``role: text`` lines and dropped the
  system message. The Modelfile's SYSTEM stands in when the request has none, its MESSAGEs come
  first, and request ``options`` override its PARAMETERs (``answers.py``);
* answers stream as NDJSON, one JSON object a line, the last with ``done: true`` and Ollama's
  timings in nanoseconds; ``"stream": false`` gives one object; errors are ``{"error": "..."}``
  with Ollama's status codes; a client that goes away stops its generation upstream;
* ``/v1/...`` passes OpenAI-style requests to llama-server's own endpoints (``openai_proxy.py``);
  what the API says about models is in ``views.py``.

This module is the app: its routes, and its errors in Ollama's shapes.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from llmlab.errors import LLMLabError
from llmlab.http.guard import BodySizeLimit
from llmlab.ollama.answers import (
    as_is,
    complete,
    conversation,
    load_or_unload,
    ns,
    num_ctx,
    status_reply,
    templated,
)
from llmlab.ollama.modelfile import ModelfileError
from llmlab.ollama.openai_proxy import openai_proxy
from llmlab.ollama.options import keep_alive_seconds
from llmlab.ollama.recipes import create_recipe
from llmlab.ollama.runners import Runners
from llmlab.ollama.schemas import (
    UNSUPPORTED,
    ApiError,
    Chat,
    ChatBody,
    Copy,
    CopyBody,
    Create,
    CreateBody,
    Embed,
    EmbedBody,
    Generate,
    GenerateBody,
    ModelBody,
    Named,
    OpenAIChatBody,
    OpenAICompletionBody,
    documented,
    openai_body,
    refuse_unsupported,
)
from llmlab.ollama.store import ModelNotInStoreError, ModelStore, StoreError
from llmlab.ollama.upstream import upstream_failure, upstream_json
from llmlab.ollama.views import epoch, running, show_model, summary

#: The Ollama API version this server follows; the suffix tells it apart from a real Ollama.
VERSION_SUFFIX = "-llmlab"
VERSION = "0.12.6" + VERSION_SUFFIX
#: Seconds uvicorn lets open requests finish at shutdown, before the runners are stopped.
SHUTDOWN_GRACE_S = 5
#: Larger than any prompt a context can hold (Ollama reads any size); model uploads are exempt.
MAX_BODY_BYTES = 16 << 20


def create_app(
    store_dir: str | Path | None = None,
    *,
    keep_alive_s: float = 300,
    parallel: int = 1,
    threads: int | None = None,
) -> FastAPI:
    """The server: models in ``store_dir`` (default: the course cache), each loaded on first
    use into a llama-server with ``parallel`` slots and ``threads`` threads (default: one per
    core), unloaded ``keep_alive_s`` after its last request. Ollama's settings for the same:
    ``OLLAMA_KEEP_ALIVE``, ``OLLAMA_NUM_PARALLEL`` and the ``num_thread`` option."""
    store = ModelStore(store_dir)
    runners = Runners(parallel=parallel, keep_alive_s=keep_alive_s, threads=threads)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        reaper = asyncio.create_task(runners.unload_expired_forever())
        try:
            yield
        finally:
            reaper.cancel()
            await runners.aclose()

    app = FastAPI(title="llmlab's Ollama-compatible server", version=VERSION, lifespan=lifespan)
    app.add_middleware(
        BodySizeLimit, max_bytes=MAX_BODY_BYTES, error_body=_error_body, exempt=("/api/blobs/",)
    )
    _add_error_handlers(app)

    @app.get("/", response_class=PlainTextResponse)
    @app.head("/", response_class=PlainTextResponse)
    def root() -> str:
        return "Ollama is running"

    @app.get("/api/version")
    def version() -> dict[str, str]:
        return {"version": VERSION}

    @app.get("/api/tags")
    def tags() -> dict[str, list]:
        return {"models": [summary(model) for model in store.list()]}

    @app.post("/api/show", openapi_extra=documented(ModelBody))
    def show(body: Named) -> dict[str, Any]:
        return show_model(store.get(body.model))

    @app.post("/api/create", openapi_extra=documented(CreateBody))
    def create(body: Create) -> Response:
        model = store.create(body.model, create_recipe(body, store))
        statuses = ["gathering model components", f"using {model.gguf}", "writing manifest"]
        return status_reply([*statuses, "success"], stream=body.stream)

    @app.post("/api/copy", openapi_extra=documented(CopyBody))
    def copy(body: Copy) -> Response:
        store.copy(body.source, body.destination)
        return Response(status_code=200)

    @app.delete("/api/delete", openapi_extra=documented(ModelBody))
    async def delete(body: Named) -> Response:
        model = store.get(body.model)
        await runners.unload_model(model.name)
        store.delete(model.name)
        return Response(status_code=200)

    @app.api_route("/api/blobs/{digest}", methods=["HEAD"])
    def has_blob(digest: str) -> Response:
        return Response(status_code=200 if store.blob_path(digest).is_file() else 404)

    @app.post("/api/blobs/{digest}", status_code=201)
    async def upload_blob(digest: str, request: Request) -> Response:
        if not store.blob_path(digest).is_file():
            await store.add_blob(digest, request.stream())
        return Response(status_code=201)

    @app.get("/api/ps")
    def ps() -> dict[str, list]:
        return {"models": [running(runner) for runner in runners.loaded]}

    @app.post("/api/generate", openapi_extra=documented(GenerateBody))
    async def generate(body: Generate) -> Response:
        refuse_unsupported(body, "suffix", "context")
        model = await asyncio.to_thread(store.get, body.model)
        if not body.prompt:
            return await load_or_unload(runners, model, body, chat=False)
        if body.raw:
            prompt_for = as_is(body.prompt)
        else:
            user = [{"role": "user", "content": body.prompt}]
            messages = conversation(model, user, system=body.system)
            prompt_for = templated(messages, body.template or model.template)
        return await complete(runners, model, body, prompt_for, chat=False)

    @app.post("/api/chat", openapi_extra=documented(ChatBody))
    async def chat(body: Chat) -> Response:
        refuse_unsupported(body)
        if any(message.images for message in body.messages):
            raise ApiError(400, f'"images" {UNSUPPORTED}')
        model = await asyncio.to_thread(store.get, body.model)
        if not body.messages:
            return await load_or_unload(runners, model, body, chat=True)
        messages = conversation(model, [m.model_dump(include={"role", "content"})
                                        for m in body.messages])  # fmt: skip
        return await complete(runners, model, body, templated(messages, model.template))

    @app.post("/api/embed", openapi_extra=documented(EmbedBody))
    async def embed(body: Embed) -> dict[str, Any]:
        started = time.perf_counter()
        model = await asyncio.to_thread(store.get, body.model)
        inputs = ([body.input] if body.input else []) if isinstance(body.input, str) else body.input
        keep_alive = keep_alive_seconds(body.keep_alive)
        runner, load_s = await runners.acquire(
            model, num_ctx=num_ctx(model, body.options), embeddings=True
        )
        answer: dict[str, Any] = {"data": []}  # no input: only load the model, as Ollama does
        try:
            if inputs:
                answer = await upstream_json(runner, "/v1/embeddings", {"input": inputs})
        finally:
            await runners.release(runner, keep_alive)
        vectors = [_shorten(item["embedding"], body.dimensions) for item in answer["data"]]
        return {
            "model": body.model,
            "embeddings": vectors,
            "total_duration": ns(time.perf_counter() - started),
            "load_duration": ns(load_s),
            "prompt_eval_count": answer.get("usage", {}).get("prompt_tokens", 0),
        }

    @app.get("/v1/models")
    def openai_models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": model.name, "object": "model", "created": epoch(model.modified_at),
                 "owned_by": "library"}
                for model in store.list()
            ],
        }  # fmt: skip

    @app.post("/v1/chat/completions", openapi_extra=documented(OpenAIChatBody))
    async def openai_chat(request: Request) -> Response:
        body = openai_body(await request.body(), OpenAIChatBody)
        return await openai_proxy(runners, store, body, "/v1/chat/completions")

    @app.post("/v1/completions", openapi_extra=documented(OpenAICompletionBody))
    async def openai_completions(request: Request) -> Response:
        body = openai_body(await request.body(), OpenAICompletionBody)
        return await openai_proxy(runners, store, body, "/v1/completions")

    return app


def _shorten(vector: list[float], dimensions: int | None) -> list[float]:
    """Ollama's ``dimensions``: the first N values, scaled back to length 1."""
    if not dimensions or dimensions >= len(vector):
        return vector
    head = vector[:dimensions]
    norm = math.sqrt(sum(x * x for x in head)) or 1.0
    return [x / norm for x in head]


def _error_body(path: str, message: str, status: int = 400) -> dict[str, Any]:
    """Ollama's ``{"error": "..."}``, or under ``/v1`` OpenAI's shape with Ollama's types."""
    if not path.startswith("/v1/"):
        return {"error": message}
    kind = "invalid_request_error" if status < 500 else "api_error"
    kind = "not_found_error" if status == 404 else kind
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as Ollama writes it: ``{"error": "..."}`` (OpenAI's shape under ``/v1``)."""

    def reply(request: Request, status: int, message: str) -> JSONResponse:
        return JSONResponse(_error_body(request.url.path, message, status), status_code=status)

    statuses: dict[type[Exception], int] = {
        ModelNotInStoreError: 404,
        ModelfileError: 400,
        StoreError: 400,
        LLMLabError: 500,  # a llama-server that failed to start, a GGUF file gone...
    }
    for kind, status in statuses.items():
        app.add_exception_handler(
            kind, lambda request, error, status=status: reply(request, status, str(error))
        )
    app.add_exception_handler(
        ApiError, lambda request, error: reply(request, error.status, error.message)
    )
    app.add_exception_handler(
        httpx.HTTPError, lambda request, error: reply(request, 500, upstream_failure(error))
    )
