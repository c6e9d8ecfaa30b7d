"""Answers to the short exercises that end chapters 01 to 03, as a teacher would show them.

``llmlab.exercises`` checks a student's function, and these, against the course's own code:

* chapter 01 (``01_transformers``): ``build_prompt``, the text the model sees for a chat;
* chapter 02 (``02_batching``): ``pad_batch``, a batch padded on the left;
* chapter 03 (``03_vllm``): ``metrics``, TTFT, TPOT and E2E as vLLM's benchmark defines them.

    python -m solutions.chapter_exercises   # runs the three checkers on these answers
"""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase

from llmlab.generation import Message


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


if __name__ == "__main__":
    from llmlab.exercises import check_chat_prompt, check_left_padding, check_serving_metrics

    check_chat_prompt(build_prompt)
    check_left_padding(pad_batch)
    check_serving_metrics(metrics)
