"""What the Ollama-compatible server accepts: request bodies, checked (options and durations are
``options.py``'s, a create request's recipe ``recipes.py``'s).

Each body is read as JSON whatever its Content-Type (Ollama's own examples use ``curl -d``,
which says it sends a form), unknown fields are ignored as Ollama ignores them, and anything
wrong is a 400 with Ollama's ``{"error": "..."}`` body that names the field. Features that a
text-only ``llama-server`` cannot give (images, tools, thinking) are refused, not ignored.

Bodies are read as Go's ``encoding/json`` (so Ollama) reads them: a lone UTF-16 surrogate
becomes U+FFFD, and a number out of range (``1e999``) or ``NaN`` is a 400. Two differences from
Ollama, both to answer 400 where llama-server would fail later with a 500: a message's role must
be one of system, user, assistant or tool (Ollama hands any role to its Go template, which skips
what it does not know; a GGUF's Jinja template may raise instead), and a body over
``MAX_BODY_BYTES`` is a 413 (Ollama reads any size).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llmlab.errors import LLMLabError
from llmlab.http.guard import HostileInputError, read_json

UNSUPPORTED = "is not supported by this server: it runs text-only GGUF models on llama-server"


class ApiError(LLMLabError):
    """An answer with an error status and Ollama's ``{"error": "..."}`` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


Role = Literal["system", "user", "assistant", "tool"]


class ChatMessage(_Body):
    role: Role
    content: str = ""
    images: list[str] | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value  # as Go reads null into a string


class InferenceBody(_Body):
    model: str = Field(min_length=1)
    stream: bool = True
    options: dict[str, Any] = Field(default_factory=dict)
    keep_alive: float | str | None = None
    format: str | dict[str, Any] | None = None
    # Features a text-only llama-server lacks; refused with a clear error when asked for.
    images: list[str] | None = None
    tools: list[Any] | None = None
    think: bool | str | None = None
    logprobs: bool | None = None


class GenerateBody(InferenceBody):
    prompt: str = ""
    system: str | None = None
    template: str | None = None
    raw: bool = False
    suffix: str | None = None
    context: list[int] | None = None


class ChatBody(InferenceBody):
    messages: list[ChatMessage] = Field(default_factory=list)


class EmbedBody(_Body):
    model: str = Field(min_length=1)
    input: str | list[str] = ""
    dimensions: int | None = Field(None, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)
    keep_alive: float | str | None = None


class CreateBody(_Body):
    model: str = Field(min_length=1)
    from_: str | None = Field(None, alias="from")
    files: dict[str, str] | None = None
    modelfile: str | None = None
    system: str | None = None
    template: str | None = None
    parameters: dict[str, Any] | None = None
    messages: list[ChatMessage] | None = None
    license: str | list[str] | None = None
    adapters: dict[str, str] | None = None
    quantize: str | None = None
    stream: bool = True


class ModelBody(_Body):
    model: str = Field(min_length=1)


class CopyBody(_Body):
    source: str = Field(min_length=1)
    destination: str = Field(min_length=1)


def _body(kind: type[_Body]) -> Any:
    """A request body read as JSON whatever its Content-Type (``curl -d`` sends a form's, and
    Ollama's own examples use it); a bad one is a 400 with Ollama's ``{"error": ...}``."""

    async def parse(request: Request) -> _Body:
        try:
            body = read_json(await request.body() or b"{}")
            return kind.model_validate(body)
        except HostileInputError as error:
            raise ApiError(400, str(error)) from None
        except ValidationError as error:
            raise ApiError(400, _explain(error)) from None

    return Depends(parse)


def documented(kind: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a body read by hand: ``/docs`` and fuzzers see its schema."""
    schema = kind.model_json_schema(by_alias=True)
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:  # OpenAPI resolves "#/$defs/..." from the document's root
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"].rsplit("/", 1)[1]])
            return {key: inline(value) for key, value in node.items()}
        return [inline(item) for item in node] if isinstance(node, list) else node

    content = {"application/json": {"schema": inline(schema)}}
    return {"requestBody": {"required": True, "content": content}}


Generate = Annotated[GenerateBody, _body(GenerateBody)]
Chat = Annotated[ChatBody, _body(ChatBody)]
Embed = Annotated[EmbedBody, _body(EmbedBody)]
Create = Annotated[CreateBody, _body(CreateBody)]
Copy = Annotated[CopyBody, _body(CopyBody)]
Named = Annotated[ModelBody, _body(ModelBody)]


#: Go's ``int`` (64 bits): a larger number is a 400 in Ollama too.
GoInt = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


class OpenAIBody(BaseModel):
    """OpenAI bodies as Ollama's Go structs read them: typed fields, unknown fields ignored."""

    model_config = ConfigDict(extra="ignore", strict=True)
    model: str = ""
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: GoInt | None = None
    seed: GoInt | None = None
    stop: str | list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    response_format: dict[str, Any] | None = None


class OpenAIMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    role: Role
    content: str | list[dict[str, Any]] | None = None


class OpenAIChatBody(OpenAIBody):
    messages: list[OpenAIMessage] = Field(default_factory=list)
    tools: list[Any] | None = None


class OpenAICompletionBody(OpenAIBody):
    prompt: str = ""
    suffix: str | None = None


def openai_body(raw: bytes, kind: type[OpenAIBody]) -> OpenAIBody:
    """A ``/v1`` body checked as Ollama checks it, with Ollama's messages for what is wrong."""
    try:
        body = kind.model_validate(read_json(raw or b"{}"))
    except HostileInputError as error:
        raise ApiError(400, str(error)) from None
    except ValidationError as error:
        raise ApiError(400, _explain(error)) from None
    if not body.model:
        raise ApiError(400, "model is required")
    if isinstance(body, OpenAIChatBody):
        if not body.messages:
            raise ApiError(400, "[] is too short - 'messages'")
        if body.tools:
            raise ApiError(400, f'"tools" {UNSUPPORTED}')
        for message in body.messages:
            _check_content(message.content)
    return body


def _check_content(content: str | list[dict[str, Any]] | None) -> None:
    if content is None:
        raise ApiError(400, "invalid message content type: <nil>")  # Ollama's words
    for part in content if isinstance(content, list) else []:
        if part.get("type") == "image_url":
            raise ApiError(400, f'"images" {UNSUPPORTED}')
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise ApiError(400, "invalid message format")


def refuse_unsupported(body: InferenceBody, *extra: str) -> None:
    """A 400 for asking what a text-only llama-server cannot do."""
    for field in ("images", "tools", "think", "logprobs", *extra):
        if getattr(body, field):
            raise ApiError(400, f'"{field}" {UNSUPPORTED}')


def _explain(error: ValidationError) -> str:
    """The first problem with a request body, as a sentence."""
    problem = error.errors()[0]
    where = ".".join(str(part) for part in problem["loc"] if part != "body")
    if problem["type"] == "missing" or (where == "model" and problem["type"] == "string_too_short"):
        return f"{where} is required"
    if problem["type"] == "json_invalid":
        return "the body is not valid JSON"
    return f"{where}: {problem['msg']}" if where else problem["msg"]
