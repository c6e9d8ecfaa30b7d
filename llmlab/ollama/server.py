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
  first, and request ``options`` override its PARAMETERs;
* answers stream as NDJSON, one JSON object a line, the last with ``done: true`` and Ollama's
  timings in nanoseconds; ``"stream": false`` gives one object; errors are ``{"error": "..."}``
  with Ollama's status codes; a client that goes away stops its generation upstream.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from llmlab.errors import LLMLabError
from llmlab.http.common import error_message
from llmlab.http.guard import BodySizeLimit
from llmlab.http.streaming import StreamError, asse_json
from llmlab.ollama.modelfile import (
    ModelfileError,
    check_template,
    convert_parameter,
    render_template,
)
from llmlab.ollama.runners import Runner, Runners
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
    InferenceBody,
    ModelBody,
    Named,
    OpenAIBody,
    OpenAIChatBody,
    OpenAICompletionBody,
    create_recipe,
    documented,
    json_schema,
    keep_alive_seconds,
    llama_options,
    openai_body,
    refuse_unsupported,
)
from llmlab.ollama.store import ModelNotInStoreError, ModelStore, StoredModel, StoreError
from llmlab.ollama.store import model_info as gguf_model_info

#: The Ollama API version this server follows; the suffix tells it apart from a real Ollama.
VERSION_SUFFIX = "-llmlab"
VERSION = "0.12.6" + VERSION_SUFFIX
#: Seconds uvicorn lets open requests finish at shutdown, before the runners are stopped.
SHUTDOWN_GRACE_S = 5
DEFAULT_NUM_CTX = 2048
NDJSON = "application/x-ndjson"
#: Larger than any prompt a context can hold (Ollama reads any size); model uploads are exempt.
MAX_BODY_BYTES = 16 << 20
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
#: How a request's prompt is made once its runner is known (it may ask llama-server).
PromptFor = Callable[[Runner], Awaitable[str]]


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
        return {"models": [_summary(model) for model in store.list()]}

    @app.post("/api/show", openapi_extra=documented(ModelBody))
    def show(body: Named) -> dict[str, Any]:
        return _show(store.get(body.model))

    @app.post("/api/create", openapi_extra=documented(CreateBody))
    def create(body: Create) -> Response:
        model = store.create(body.model, create_recipe(body, store))
        statuses = ["gathering model components", f"using {model.gguf}", "writing manifest"]
        return _status_reply([*statuses, "success"], stream=body.stream)

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
        return {"models": [_running(runner) for runner in runners.loaded]}

    @app.post("/api/generate", openapi_extra=documented(GenerateBody))
    async def generate(body: Generate) -> Response:
        refuse_unsupported(body, "suffix", "context")
        model = await asyncio.to_thread(store.get, body.model)
        if not body.prompt:
            return await _load_or_unload(runners, model, body, chat=False)
        if body.raw:
            prompt_for = _as_is(body.prompt)
        else:
            user = [{"role": "user", "content": body.prompt}]
            messages = conversation(model, user, system=body.system)
            prompt_for = _templated(messages, body.template or model.template)
        return await _complete(runners, model, body, prompt_for, chat=False)

    @app.post("/api/chat", openapi_extra=documented(ChatBody))
    async def chat(body: Chat) -> Response:
        refuse_unsupported(body)
        if any(message.images for message in body.messages):
            raise ApiError(400, f'"images" {UNSUPPORTED}')
        model = await asyncio.to_thread(store.get, body.model)
        if not body.messages:
            return await _load_or_unload(runners, model, body, chat=True)
        messages = conversation(model, [m.model_dump(include={"role", "content"})
                                        for m in body.messages])  # fmt: skip
        return await _complete(runners, model, body, _templated(messages, model.template))

    @app.post("/api/embed", openapi_extra=documented(EmbedBody))
    async def embed(body: Embed) -> dict[str, Any]:
        started = time.perf_counter()
        model = await asyncio.to_thread(store.get, body.model)
        inputs = ([body.input] if body.input else []) if isinstance(body.input, str) else body.input
        keep_alive = keep_alive_seconds(body.keep_alive)
        runner, load_s = await runners.acquire(
            model, num_ctx=_num_ctx(model, body.options), embeddings=True
        )
        answer: dict[str, Any] = {"data": []}  # no input: only load the model, as Ollama does
        try:
            if inputs:
                answer = await _upstream_json(runner, "/v1/embeddings", {"input": inputs})
        finally:
            await runners.release(runner, keep_alive)
        vectors = [_shorten(item["embedding"], body.dimensions) for item in answer["data"]]
        return {
            "model": body.model,
            "embeddings": vectors,
            "total_duration": _ns(time.perf_counter() - started),
            "load_duration": _ns(load_s),
            "prompt_eval_count": answer.get("usage", {}).get("prompt_tokens", 0),
        }

    @app.get("/v1/models")
    def openai_models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": model.name, "object": "model", "created": _epoch(model.modified_at),
                 "owned_by": "library"}
                for model in store.list()
            ],
        }  # fmt: skip

    @app.post("/v1/chat/completions", openapi_extra=documented(OpenAIChatBody))
    async def openai_chat(request: Request) -> Response:
        body = openai_body(await request.body(), OpenAIChatBody)
        return await _openai_proxy(runners, store, body, "/v1/chat/completions")

    @app.post("/v1/completions", openapi_extra=documented(OpenAICompletionBody))
    async def openai_completions(request: Request) -> Response:
        body = openai_body(await request.body(), OpenAICompletionBody)
        return await _openai_proxy(runners, store, body, "/v1/completions")

    return app


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


# --- building answers --------------------------------------------------------------------------


def _as_is(prompt: str) -> PromptFor:
    async def prompt_for(runner: Runner) -> str:
        return prompt

    return prompt_for


def _templated(messages: list[dict[str, Any]], template: str | None) -> PromptFor:
    """The prompt for a chat: an Ollama TEMPLATE if the model has one, else the chat template
    in the GGUF file, applied by llama-server itself (``/apply-template``)."""

    async def prompt_for(runner: Runner) -> str:
        if template:
            try:
                check_template(template)
            except ValueError as error:
                raise ApiError(400, str(error)) from None
            return render_template(template, messages)
        return (await _upstream_json(runner, "/apply-template", {"messages": messages}))["prompt"]

    return prompt_for


async def _complete(
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
    runner, load_s = await runners.acquire(model, num_ctx=_num_ctx(model, body.options))
    try:
        payload["prompt"] = await prompt_for(runner)
        upstream = await _open_stream(runner, "/completion", payload)
    except BaseException:
        await runners.release(runner, keep_alive)
        raise
    reply = _Reply(body.model, chat=chat, started=started, load_s=load_s)

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
        return StreamingResponse(_ndjson(chunks()), media_type=NDJSON)
    return JSONResponse(reply.whole([chunk async for chunk in chunks()]))


class _Reply:
    """Ollama's answer shapes: ``message`` pieces for chat, ``response`` pieces for generate."""

    def __init__(self, model: str, *, chat: bool, started: float, load_s: float) -> None:
        self.model, self.chat, self.started, self.load_s = model, chat, started, load_s

    def chunk(self, text: str, *, done: bool = False) -> dict[str, Any]:
        content: dict[str, Any] = {"response": text}
        if self.chat:
            content = {"message": {"role": "assistant", "content": text}}
        return {"model": self.model, "created_at": _now(), **content, "done": done}

    def final(self, last: dict[str, Any]) -> dict[str, Any]:
        timings = last.get("timings", {})
        return self.chunk("", done=True) | {
            "done_reason": "length" if last.get("stop_type") == "limit" else "stop",
            "total_duration": _ns(time.perf_counter() - self.started),
            "load_duration": _ns(self.load_s),
            "prompt_eval_count": last.get("tokens_evaluated", 0),
            "prompt_eval_duration": _ns(timings.get("prompt_ms", 0) / 1000),
            "eval_count": timings.get("predicted_n", last.get("tokens_predicted", 0)),
            "eval_duration": _ns(timings.get("predicted_ms", 0) / 1000),
        }

    def whole(self, chunks: list[dict[str, Any]]) -> dict[str, Any]:
        if not chunks or not chunks[-1]["done"]:
            raise ApiError(500, "llama-server ended the answer without finishing it")
        key = "message" if self.chat else "response"
        text = "".join(c["message"]["content"] if self.chat else c["response"] for c in chunks)
        whole = chunks[-1]
        whole[key] = {"role": "assistant", "content": text} if self.chat else text
        return whole


async def _load_or_unload(
    runners: Runners, model: StoredModel, body: InferenceBody, *, chat: bool
) -> Response:
    """A request with nothing to answer loads the model, or with ``keep_alive: 0`` unloads it."""
    keep_alive = keep_alive_seconds(body.keep_alive)
    reply = _Reply(body.model, chat=chat, started=0, load_s=0).chunk("", done=True)
    if keep_alive == 0:
        await runners.unload_model(model.name)
        return JSONResponse(reply | {"done_reason": "unload"})
    runner, _ = await runners.acquire(model, num_ctx=_num_ctx(model, body.options))
    await runners.release(runner, keep_alive)
    return JSONResponse(reply | {"done_reason": "load"})


async def _ndjson(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield json.dumps(chunk).encode() + b"\n"
    except (ApiError, httpx.HTTPError, StreamError) as error:  # the status has gone out
        message = error.message if isinstance(error, ApiError) else _upstream_failure(error)
        yield json.dumps({"error": message}).encode() + b"\n"


def _status_reply(statuses: list[str], *, stream: bool) -> Response:
    if not stream:
        return JSONResponse({"status": statuses[-1]})
    lines = (json.dumps({"status": status}) + "\n" for status in statuses)
    return StreamingResponse(lines, media_type=NDJSON)


# --- talking to llama-server -------------------------------------------------------------------


async def _open_stream(runner: Runner, path: str, payload: dict[str, Any]) -> httpx.Response:
    request = runner.http.build_request("POST", path, json=payload)
    response = await runner.http.send(request, stream=True)
    if response.is_error:
        await response.aread()
        await response.aclose()
        raise ApiError(_status(response), error_message(response))
    return response


async def _upstream_json(runner: Runner, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    response = await runner.http.post(path, json=payload)
    if response.is_error:
        raise ApiError(_status(response), error_message(response))
    return response.json()


def _upstream_failure(error: httpx.HTTPError | StreamError) -> str:
    return f"llama-server stopped answering ({type(error).__name__}: {error}); see its log"


def _status(response: httpx.Response) -> int:
    """llama-server's 4xx (a prompt too long for the context...) is the client's; the rest ours."""
    return response.status_code if response.status_code < 500 else 500


async def _openai_proxy(runners: Runners, store: ModelStore, body: OpenAIBody, path: str):
    """``/v1/...`` goes to llama-server's own OpenAI endpoint, with the Modelfile applied."""
    model = await asyncio.to_thread(store.get, body.model)
    defaults = {OPENAI_DEFAULTS[k]: v for k, v in model.parameters.items() if k in OPENAI_DEFAULTS}
    payload = defaults | body.model_dump(exclude_none=True) | {"model": model.name}
    num_ctx = _num_ctx(model, {})
    if body.max_tokens is not None:  # Ollama's bound: at most 10 contexts, negative included
        limit = 10 * num_ctx
        payload["max_tokens"] = min(body.max_tokens, limit) if body.max_tokens >= 0 else limit
    if isinstance(body, OpenAIChatBody):
        payload["messages"] = conversation(model, payload["messages"])
    runner, _ = await runners.acquire(model, num_ctx=num_ctx)
    try:
        upstream = await _open_stream(runner, path, payload)
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


# --- the model store's answers -----------------------------------------------------------------


def _summary(model: StoredModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "model": model.name,
        "modified_at": model.modified_at,
        "size": model.size,
        "digest": model.digest,
        "details": model.details,
    }


def _show(model: StoredModel) -> dict[str, Any]:
    info = gguf_model_info(model.gguf)
    header = (
        f'# Modelfile generated by "ollama show"\n# To build a new Modelfile based on this, '
        f"replace FROM with:\n# FROM {model.name}\n\n"
    )
    shown = {
        "modelfile": header + model.modelfile().render(),
        "parameters": "\n".join(
            f"{name:<30} {json.dumps(one)}"
            for name, value in model.parameters.items()
            for one in (value if isinstance(value, list) else [value])
        ),
        "template": model.template or info.get("tokenizer.chat_template") or "{{ .Prompt }}",
        "details": model.details,
        "model_info": info,
        "capabilities": ["completion"],
        "modified_at": model.modified_at,
    }
    extras: dict[str, Any] = {"system": model.system, "license": "\n".join(model.license)}
    extras["messages"] = model.messages
    return shown | {key: value for key, value in extras.items() if value}


def _running(runner: Runner) -> dict[str, Any]:
    model = runner.model
    return {
        "name": model.name,
        "model": model.name,
        "size": model.size,
        "digest": model.digest,
        "details": model.details,
        "expires_at": runner.expires_at.isoformat(),
        "size_vram": 0,  # llama-server runs on the CPU here
        "context_length": runner.key.num_ctx,
    }


# --- small helpers -----------------------------------------------------------------------------


def _num_ctx(model: StoredModel, options: dict[str, Any]) -> int:
    value = options.get("num_ctx", model.parameters.get("num_ctx", DEFAULT_NUM_CTX))
    try:
        return convert_parameter("num_ctx", value)
    except ValueError as error:
        raise ApiError(400, f"option {error}") from None


def _shorten(vector: list[float], dimensions: int | None) -> list[float]:
    """Ollama's ``dimensions``: the first N values, scaled back to length 1."""
    if not dimensions or dimensions >= len(vector):
        return vector
    head = vector[:dimensions]
    norm = math.sqrt(sum(x * x for x in head)) or 1.0
    return [x / norm for x in head]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _epoch(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp())


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


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
        httpx.HTTPError, lambda request, error: reply(request, 500, _upstream_failure(error))
    )
