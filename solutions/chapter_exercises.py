"""Answers to the short exercises that end chapters 01 to 08, as a teacher would show them.

``llmlab.exercises`` checks a student's function, and these, against the course's own code:

* chapter 01 (``01_transformers``): ``build_prompt``, the text the model sees for a chat;
* chapter 02 (``02_batching``): ``pad_batch``, a batch padded on the left;
* chapter 03 (``03_vllm``): ``metrics``, TTFT, TPOT and E2E as vLLM's benchmark defines them;
* chapter 04 (``04_llamacpp``): ``describe_gguf``, what a GGUF file says about itself;
* chapter 05 (``05_ollama``): ``chat_body``, the JSON body of Ollama's ``POST /api/chat``;
* chapter 06 (``06_fastapi``): ``ChatRequest``, a request model that refuses bad input (422);
* chapter 07 (``07_web_ui``): ``reply``, the streaming function behind a Gradio chat page;
* chapter 08 (``08_scaling_out``): ``replicas_needed``, replicas for a load within a latency
  budget, from one replica's measured levels.

    python -m solutions.chapter_exercises   # runs the checkers on these answers (chapter 07's
                                            # on a llama-server it starts)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import openai
import torch
from gguf import GGUFReader, LlamaFileType
from pydantic import BaseModel, ConfigDict, Field
from transformers import PreTrainedTokenizerBase

from llmlab.messages import Message
from llmlab.prompts import SYSTEM_PROMPT
from llmlab.service.schemas import MAX_MESSAGES, MAX_TOKENS_LIMIT
from llmlab.sizing.capacity import MeasuredLevel


def build_prompt(tokenizer: PreTrainedTokenizerBase, messages: list[Message]) -> str:
    """The model's own chat template, ending with the assistant's turn so the model answers."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def pad_batch(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad on the left, to the longest prompt of this batch, so every row ends with its prompt.

    The mask comes from the lengths, not from ``ids != pad_id``: a prompt may hold the pad id.
    """
    width = max(len(seq) for seq in sequences)
    input_ids = torch.tensor([[pad_id] * (width - len(seq)) + seq for seq in sequences])
    attention_mask = torch.tensor([[0] * (width - len(seq)) + [1] * len(seq) for seq in sequences])
    return input_ids, attention_mask


def metrics(sent_s: float, chunk_times_s: list[float], output_tokens: int) -> dict:
    """TTFT to the first chunk, E2E to the last, TPOT over the tokens after the first."""
    ttft_s = chunk_times_s[0] - sent_s
    e2e_s = chunk_times_s[-1] - sent_s
    tpot_s = (e2e_s - ttft_s) / (output_tokens - 1) if output_tokens > 1 else None
    return {"ttft_s": ttft_s, "tpot_s": tpot_s, "e2e_s": e2e_s}


def describe_gguf(path: str | Path) -> dict:
    """The header of a GGUF file, read with ``gguf.GGUFReader``; ``field.contents()`` turns a
    field's raw parts into a value. Keys depend on the architecture, so read that first."""
    reader = GGUFReader(path)
    architecture = reader.fields["general.architecture"].contents()
    return {
        "architecture": architecture,
        "context_length": reader.fields[f"{architecture}.context_length"].contents(),
        "quantization": LlamaFileType(reader.fields["general.file_type"].contents()).name,
        "tensors": len(reader.tensors),
    }


def chat_body(
    model: str,
    messages: list[Message],
    *,
    temperature: float,
    max_tokens: int,
    stream: bool = False,
) -> dict:
    """The messages as they are (the server applies the chat template), sampling settings in
    ``options`` by Ollama's names, and ``stream`` always: Ollama streams when it is left out."""
    return {
        "model": model,
        "messages": list(messages),
        "stream": stream,
        "options": {"temperature": temperature, "num_predict": max_tokens},
    }


class ChatMessage(BaseModel):
    """One turn; only the roles a chat template knows."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    """Every field bounded by the service's limits, and unknown fields refused, so that a typo
    such as ``max_token`` is a 422 instead of a request that silently runs with the default."""

    model_config = ConfigDict(extra="forbid")

    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int = Field(256, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float = Field(0.7, ge=0, le=2)


def reply(
    client: openai.OpenAI,
    model: str,
    message: str,
    history: list[Message],
    max_tokens: int = 512,
) -> Iterator[str]:
    """The system prompt, the conversation so far and the new message; the answer so far after
    every chunk (Gradio shows each value yielded as the whole reply). The ``with`` block closes
    the stream when Gradio closes this generator on Stop, and the server stops generating."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, *history,
                {"role": "user", "content": message}]  # fmt: skip
    answer = ""
    with client.chat.completions.create(
        model=model, messages=messages, max_tokens=max_tokens, stream=True
    ) as stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                answer += chunk.choices[0].delta.content
                yield answer


def replicas_needed(
    levels: Sequence[MeasuredLevel], users: int, ttft_budget_s: float, tpot_budget_s: float
) -> int:
    """What one replica carries is the busiest measured level within *both* budgets (not the
    level with the most tokens/s); the replicas are that, rounded up. A budget that no level
    meets is refused: more replicas do not make one replica answer faster."""
    within = [
        level
        for level in levels
        if level.ttft_p90_s <= ttft_budget_s and level.tpot_p50_s <= tpot_budget_s
    ]
    if not within:
        raise ValueError("No measured level meets the budget: a faster replica is needed")
    per_replica = max(level.concurrency for level in within)
    return math.ceil(users / per_replica)


if __name__ == "__main__":
    from llmlab.exercises import (
        check_chat_prompt,
        check_chat_reply,
        check_gguf_summary,
        check_left_padding,
        check_ollama_chat_body,
        check_replicas_needed,
        check_request_model,
        check_serving_metrics,
    )

    check_chat_prompt(build_prompt)
    check_left_padding(pad_batch)
    check_serving_metrics(metrics)
    check_gguf_summary(describe_gguf)
    check_ollama_chat_body(chat_body)
    check_request_model(ChatRequest)
    check_replicas_needed(replicas_needed)

    from llmlab.servers.llamacpp import llama_server

    with llama_server() as server:
        check_chat_reply(reply, server)
