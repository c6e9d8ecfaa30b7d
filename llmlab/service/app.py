"""The course's model service: the source chapter's FastAPI server, made to hold up under load.

What changed from the source chapter, and why:

* the model loads in a ``lifespan`` handler (``@app.on_event`` is deprecated), in a thread, so
  ``/health`` answers "loading" at once instead of the port staying closed;
* generation runs in the engine's worker thread, never inside ``async def`` on the event loop,
  so concurrent requests share the model: a request joins the running batch at the next
  decoding step (``continuous.py``; ``engine.py`` keeps the static batches it replaced);
* a full queue answers 429 with ``Retry-After``; a client that disconnects stops its generation;
* chat goes through the chat template and every answer reports real token usage;
* bodies are validated (limits, no unknown fields, known roles), an optional API key is checked,
  and the server binds 127.0.0.1 unless told otherwise;
* hostile input gets a 4xx, never a 500 or a reset connection (``request_guard``): a body over
  ``max_body_bytes`` is a 413 before it is parsed, infinite numbers and lone surrogates are
  422s, and error bodies name the field without echoing the bad value;
* the OpenAI endpoints (with SSE streaming) let the ``openai`` client and every tool built on it
  talk to the service, and ``/metrics`` exposes Prometheus figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi import Request as HTTPRequest
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from jinja2 import TemplateError
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from sse_starlette import EventSourceResponse

from llmlab.http.guard import (
    MAX_BODY_BYTES,
    ASGIApp,
    BodySizeLimit,
    Receive,
    Scope,
    Send,
    validation_errors,
)
from llmlab.local.generation import LocalLLM
from llmlab.local.sampling import SamplingParams
from llmlab.service.continuous import ContinuousEngine
from llmlab.service.engine import (
    Engine,
    Finished,
    InferenceEngine,
    QueueFullError,
    Request,
    TextDelta,
)
from llmlab.service.gateway import BackendEngine
from llmlab.service.schemas import (
    ChatRequest,
    GenerateRequest,
    GenerationResponse,
    OpenAIChatRequest,
    OpenAICompletionRequest,
    Sampling,
    UsageBody,
)
from llmlab.settings import served_model_name


@dataclass(frozen=True)
class ServiceSettings:
    """What an operator sets: by argument, or ``LLMLAB_API_KEY`` / ``LLMLAB_MODEL``."""

    model: str | None = None
    api_key: str | None = None
    max_batch_size: int = 16
    max_queue: int = 64
    max_prompt_tokens: int = 1536
    max_body_bytes: int = MAX_BODY_BYTES
    #: How the in-process model takes requests: "continuous" (a request joins the running batch
    #: at the next step, ``continuous.py``) or "static" (whole batches, ``engine.py``).
    engine: Literal["continuous", "static"] = "continuous"
    #: Gateway mode: an OpenAI-compatible backend (URL ending in /v1) does the generating.
    backend_url: str | None = None
    backend_model: str | None = None
    backend_api_key: str | None = None

    @classmethod
    def from_env(cls) -> ServiceSettings:
        return cls(api_key=os.environ.get("LLMLAB_API_KEY") or None)


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "llmlab_requests", "Generation requests by outcome", ["endpoint", "outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.tokens = Counter("llmlab_tokens", "Tokens processed", ["kind"], registry=self.registry)
        self.latency = Histogram(
            "llmlab_request_latency_seconds", "From queueing to the last token", ["endpoint"],
            registry=self.registry,
        )  # fmt: skip
        self.queue_depth = Gauge("llmlab_queue_depth", "Requests waiting", registry=self.registry)
        self.running = Gauge(
            "llmlab_requests_running", "Requests generating", registry=self.registry
        )
        self.first_token = Histogram(
            "llmlab_first_token_stage_seconds",
            "Where a streamed request's time to first token goes, stage by stage",
            ["stage"], registry=self.registry, buckets=STAGE_BUCKETS,
        )  # fmt: skip
        for stage in FIRST_TOKEN_STAGES:  # each series exists from the start, at 0
            self.first_token.labels(stage)

    def observe_first_token(self, arrival: _Arrival, request: Request, relayed: float) -> None:
        """Split the time from a request's arrival to its first token's relay into stages:
        parse (body, JSON, validation, key), template (chat template, tokens, limits), dispatch
        (until the gateway's request leaves for the backend), model (the backend's or the
        engine's time to the first text) and relay (until that text is handed to the server)."""
        if request.first_token_at is None:
            return
        model_from = request.sent_at or request.queued_at
        stages = {
            "parse": arrival.handled - arrival.arrived,
            "template": request.queued_at - arrival.handled,
            "model": request.first_token_at - model_from,
            "relay": relayed - request.first_token_at,
        }
        if request.sent_at is not None:
            stages["dispatch"] = request.sent_at - request.queued_at
        for stage, seconds in stages.items():
            self.first_token.labels(stage).observe(max(0.0, seconds))


@dataclass(frozen=True)
class _Arrival:
    """When a request reached the server (``ArrivalTime``) and when its handler began."""

    arrived: float
    handled: float

    @classmethod
    def of(cls, http: HTTPRequest) -> _Arrival:
        now = time.monotonic()
        return cls(getattr(http.state, "arrived", now), now)


class ArrivalTime:
    """ASGI middleware: stamps each request with the moment it arrived, before its body is
    read and parsed (``request.state.arrived``), for the first-token stages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["arrived"] = time.monotonic()
        await self.app(scope, receive, send)


#: The stages of a streamed request's time to first token (``_Metrics.observe_first_token``).
FIRST_TOKEN_STAGES = ("parse", "template", "dispatch", "model", "relay")
#: Histogram buckets for the first-token stages: a millisecond's fractions up to a few seconds.
STAGE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """A new service; the model starts loading when the app starts."""
    settings = settings or ServiceSettings.from_env()
    model_name = served_model_name(settings.model)
    metrics = _Metrics()
    engines: list[InferenceEngine] = []  # filled once the model has loaded
    failures: list[str] = []

    def load() -> None:
        try:
            engine: InferenceEngine
            if settings.backend_url:
                engine = BackendEngine(
                    settings.backend_url,
                    settings.backend_model or model_name,
                    tokenizer_model=settings.model,
                    api_key=settings.backend_api_key,
                    max_in_flight=settings.max_queue,
                )
            else:
                scheduler = ContinuousEngine if settings.engine == "continuous" else Engine
                engine = scheduler(
                    LocalLLM(settings.model),
                    max_batch_size=settings.max_batch_size,
                    max_queue=settings.max_queue,
                )
        except Exception as error:
            failures.append(f"{type(error).__name__}: {error}")
            raise
        metrics.queue_depth.set_function(lambda: engine.queue_depth)
        metrics.running.set_function(lambda: engine.running)
        engines.append(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(asyncio.to_thread(load))
        yield
        # Uvicorn has already let in-flight requests finish; now drain the engine and stop it.
        await asyncio.gather(loading, return_exceptions=True)
        for engine in engines:
            await engine.aclose()

    app = FastAPI(title="llmlab model service", lifespan=lifespan)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        error_body=lambda path, message: {"detail": message},
    )
    app.add_middleware(ArrivalTime)  # the outermost: it sees a request first

    @app.exception_handler(RequestValidationError)
    def invalid_body(request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_errors(list(error.errors()))}, status_code=422)

    def engine() -> InferenceEngine:
        if engines:
            return engines[0]
        if failures:
            raise HTTPException(500, f"The model failed to load: {failures[0]}")
        raise HTTPException(503, "The model is still loading.", headers={"Retry-After": "5"})

    # async: FastAPI runs a plain-def dependency in its thread pool, a hop per request that the
    # first-token stages show (parse: 1.2 -> 0.7 ms at 1 client, 11-75 -> 4-14 ms at 16).
    async def check_key(authorization: str | None = Header(None)) -> None:
        if settings.api_key is None:
            return
        if not authorization or not authorization.startswith("Bearer "):
            raise HTTPException(
                401, "Missing API key: send 'Authorization: Bearer <key>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
        given = authorization.removeprefix("Bearer ").encode("latin-1")  # the header's bytes
        if not secrets.compare_digest(given, settings.api_key.encode()):
            raise HTTPException(403, "Wrong API key.")

    def submit(endpoint: str, prompt_ids: list[int], body: Sampling) -> Request:
        if len(prompt_ids) > settings.max_prompt_tokens:
            metrics.requests.labels(endpoint, "rejected").inc()
            raise HTTPException(
                400,
                f"The prompt is {len(prompt_ids)} tokens; this service accepts at most "
                f"{settings.max_prompt_tokens}. Shorten it or drop earlier messages.",
            )
        params = SamplingParams(
            max_new_tokens=body.max_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            ignore_eos=body.ignore_eos,
            seed=getattr(body, "seed", None),
        )
        try:
            return engine().submit(prompt_ids, params)
        except ValueError as error:  # more than the engine's KV cache could ever hold
            metrics.requests.labels(endpoint, "rejected").inc()
            raise HTTPException(400, str(error)) from None
        except QueueFullError:
            metrics.requests.labels(endpoint, "busy").inc()
            raise HTTPException(
                429, "The service is busy; try again shortly.", headers={"Retry-After": "1"}
            ) from None

    def record(endpoint: str, request: Request, finished: Finished) -> None:
        metrics.requests.labels(endpoint, "error" if finished.error else "ok").inc()
        metrics.tokens.labels("prompt").inc(finished.usage.prompt_tokens)
        metrics.tokens.labels("completion").inc(finished.usage.completion_tokens)
        metrics.latency.labels(endpoint).observe(time.monotonic() - request.queued_at)

    async def complete(endpoint: str, request: Request) -> tuple[str, Finished]:
        try:
            text, finished = await request.result()
        finally:
            request.cancel()  # a no-op when done; stops the row if the client went away
        record(endpoint, request, finished)
        if finished.error:
            raise HTTPException(500, f"Generation failed: {finished.error}")
        return text, finished

    def encode(prompt: str | list) -> list[int]:
        """Token ids through the chat template; a chat it cannot format is the client's 422."""
        messages = prompt if isinstance(prompt, str) else [m.model_dump() for m in prompt]
        try:
            return engine().encode(messages)
        except (ValueError, TemplateError) as error:  # ends with the assistant's turn...
            raise HTTPException(422, f"The chat cannot be formatted: {error}.") from None

    @app.get("/health")
    def health() -> dict[str, str]:
        if failures:
            raise HTTPException(500, f"The model failed to load: {failures[0]}")
        if not engines:
            raise HTTPException(503, "loading", headers={"Retry-After": "5"})
        return {"status": "ready", "model": model_name}

    @app.get("/metrics", response_class=PlainTextResponse)
    def prometheus() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/generate", dependencies=[Depends(check_key)])
    async def generate(body: GenerateRequest) -> GenerationResponse:
        request = submit("generate", encode(body.prompt), body)
        text, finished = await complete("generate", request)
        return _response(text, finished)

    @app.post("/chat", dependencies=[Depends(check_key)])
    async def chat(body: ChatRequest) -> GenerationResponse:
        request = submit("chat", encode(body.messages), body)
        text, finished = await complete("chat", request)
        return _response(text, finished)

    @app.get("/v1/models", dependencies=[Depends(check_key)])
    def models() -> dict:
        return {
            "object": "list",
            "data": [{"id": model_name, "object": "model", "owned_by": "llmlab"}],
        }

    @app.post("/v1/chat/completions", dependencies=[Depends(check_key)])
    async def chat_completions(body: OpenAIChatRequest, http: HTTPRequest):
        arrival = _Arrival.of(http)
        request = submit("chat_completions", encode(body.messages), body)
        return await _openai_answer("chat_completions", body, request, arrival, chat=True)

    @app.post("/v1/completions", dependencies=[Depends(check_key)])
    async def completions(body: OpenAICompletionRequest, http: HTTPRequest):
        arrival = _Arrival.of(http)
        request = submit("completions", encode(body.prompt), body)
        return await _openai_answer("completions", body, request, arrival, chat=False)

    async def _openai_answer(
        endpoint: str, body, request: Request, arrival: _Arrival, *, chat: bool
    ):
        reply = _OpenAIReply(model_name, chat)
        if not body.stream:
            text, finished = await complete(endpoint, request)
            return reply.whole(text, finished)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        async def events() -> AsyncIterator[str]:
            first = True
            try:
                async for event in request:
                    if isinstance(event, TextDelta):
                        chunk = reply.chunk(event.text, None)
                        if first:  # the first text, handed to the server to write
                            metrics.observe_first_token(arrival, request, time.monotonic())
                            first = False
                        yield chunk
                    else:
                        record(endpoint, request, event)
                        yield reply.chunk("", event.finish_reason)
                        if include_usage:
                            yield reply.usage_chunk(event)
                yield "[DONE]"
            finally:
                request.cancel()  # the client disconnected, or we are done

        return EventSourceResponse(events(), ping=15)

    return app


def _usage(finished: Finished) -> dict[str, int]:
    usage = finished.usage
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _response(text: str, finished: Finished) -> GenerationResponse:
    return GenerationResponse(
        text=text, finish_reason=finished.finish_reason, usage=UsageBody(**_usage(finished))
    )


class _OpenAIReply:
    """Bodies in the shapes the OpenAI API (and so the ``openai`` client) expects."""

    def __init__(self, model: str, chat: bool) -> None:
        self.model, self.chat = model, chat
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:16]}"
        self.created = int(time.time())
        self.object = "chat.completion" if chat else "text_completion"

    def _envelope(self, choices: list, object_suffix: str = "") -> dict:
        return {
            "id": self.id,
            "object": self.object + object_suffix,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def whole(self, text: str, finished: Finished) -> dict:
        content = (
            {"message": {"role": "assistant", "content": text}} if self.chat else {"text": text}
        )
        choice = {"index": 0, **content, "finish_reason": finished.finish_reason}
        return self._envelope([choice]) | {"usage": _usage(finished)}

    def chunk(self, text: str, finish_reason: str | None) -> str:
        content = {"delta": {"role": "assistant", "content": text}} if self.chat else {"text": text}
        choice = {"index": 0, **content, "finish_reason": finish_reason}
        return _json(self._envelope([choice], ".chunk" if self.chat else ""))

    def usage_chunk(self, finished: Finished) -> str:
        suffix = ".chunk" if self.chat else ""
        return _json(self._envelope([], suffix) | {"usage": _usage(finished)})


def _json(body: dict) -> str:
    return json.dumps(body, separators=(",", ":"))
