"""Request bodies the service accepts: bounded, strict, and explained when wrong.

Every field has a limit, unknown fields are refused (a typo such as ``max_token`` would
otherwise be ignored silently), and roles are checked, so a bad request gets a 422 that names
the field instead of a 500 or a surprising answer. Numbers must be finite (JSON's ``1e999`` is
infinity to Python) and text must be valid Unicode (no lone surrogates): see ``request_guard``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llmlab.http.guard import Text

MAX_TOKENS_LIMIT = 1024
MAX_MESSAGES = 64
MAX_PROMPT_CHARS = 32_000


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Sampling(Strict):
    max_tokens: int = Field(256, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    ignore_eos: bool = False  # vLLM's extension: write exactly max_tokens (for benchmarks)


class ChatMessage(Strict):
    role: Literal["system", "user", "assistant"]
    content: Text = Field(max_length=MAX_PROMPT_CHARS)


class GenerateRequest(Sampling):
    """The source chapter's ``POST /generate``."""

    prompt: Text = Field(min_length=1, max_length=MAX_PROMPT_CHARS)


class ChatRequest(Sampling):
    """The source chapter's ``POST /chat``."""

    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)


class UsageBody(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class GenerationResponse(BaseModel):
    text: str
    finish_reason: str
    usage: UsageBody


class StreamOptions(Strict):
    include_usage: bool = False


class OpenAIParams(Sampling):
    """The OpenAI fields the service supports; others are refused by name."""

    model: Text = Field(max_length=256)
    stream: bool = False
    stream_options: StreamOptions | None = None
    seed: int | None = Field(None, ge=0, le=2**63 - 1)  # what torch.manual_seed takes
    max_tokens: int = Field(256, ge=1, le=MAX_TOKENS_LIMIT)


class OpenAIChatRequest(OpenAIParams):
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)


class OpenAICompletionRequest(OpenAIParams):
    prompt: Text = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
