"""Chapter 02's exercise: ``pad_batch``, prompts of different lengths padded on the left into
one batch, checked against ``LeftPaddingCollator``."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

import torch

from llmlab.exercises.common import (
    ExerciseError,
    call_student,
    function_name,
    kind_of,
    passed,
)
from llmlab.local.batching import LeftPaddingCollator

#: (case, sequences, pad_id). The last holds the pad id inside prompts, as chat prompts do for a
#: model that pads with its end-of-turn token (SmolLM2: id 2, <|im_end|>).
PADDING_CASES: list[tuple[str, list[list[int]], int]] = [
    ("three prompts of different lengths", [[5, 6, 7], [8], [9, 10]], 0),
    ("two prompts of the same length", [[11, 12, 13], [14, 15, 16]], 0),
    (
        "chat prompts that hold the pad id (their end-of-turn token)",
        [[1, 520, 2, 198, 7], [1, 2, 9], [4093, 2, 2, 8]],
        2,
    ),
]


def check_left_padding(
    pad_batch: Callable[[list[list[int]], int], tuple[torch.Tensor, torch.Tensor]],
) -> None:
    """Check ``pad_batch(sequences, pad_id) -> (input_ids, attention_mask)`` against the
    course's ``LeftPaddingCollator``: left padding, to the longest prompt of the batch."""
    __tracebackhide__ = True
    name = function_name(pad_batch)
    for case, sequences, pad_id in PADDING_CASES:
        where = f"{name}, on {case} (sequences={sequences}, pad_id={pad_id})"
        result = call_student(pad_batch, (copy.deepcopy(sequences), pad_id), where)
        problem = _padding_problem(result, sequences, pad_id)
        if problem:
            raise ExerciseError(f"{where}: {problem}")
    passed(f"{name} pads on the left like LeftPaddingCollator on {len(PADDING_CASES)} batches")


def _padding_problem(result: object, sequences: list[list[int]], pad_id: int) -> str | None:
    if isinstance(result, Mapping):
        return "it returned a dict; return a tuple: `return input_ids, attention_mask`."
    if not isinstance(result, tuple | list) or len(result) != 2:
        return (
            f"it returned {kind_of(result)}; "
            "return two tensors, `return input_ids, attention_mask`."
        )
    ids, mask = result
    if mask is None:
        return (
            "the attention mask is missing: without it the model attends to the pad tokens as "
            "if they were part of the prompt. Return a mask with 1 for each token, 0 for each pad."
        )
    for label, value in (("input_ids", ids), ("attention_mask", mask)):
        if isinstance(value, list | tuple):
            return (
                f"{label} is a Python {type(value).__name__}; return tensors: torch.tensor(rows)."
            )
        if not isinstance(value, torch.Tensor):
            return f"{label} is a {type(value).__name__}; return a torch.Tensor."
        if value.dtype != torch.long:
            floats = "; torch.zeros and torch.ones make floats unless given a dtype"
            return (
                f"{label} has dtype {value.dtype}: make it torch.long, like the tokenizer's "
                f"tensors{floats if value.is_floating_point() else ''}."
            )
    expected = LeftPaddingCollator(pad_id)(list(enumerate(sequences)))
    right = LeftPaddingCollator(pad_id, side="right")(list(enumerate(sequences)))
    longest = max(len(row) for row in sequences)
    if ids.dim() != 2 or ids.shape[0] != len(sequences):
        return (
            f"input_ids has shape {tuple(ids.shape)}; it needs one row per prompt: "
            f"({len(sequences)}, {longest}) here."
        )
    if ids.shape[1] > longest:
        return (
            f"input_ids has {ids.shape[1]} positions but the longest prompt of this batch has "
            f"{longest} tokens: pad to the longest prompt in the batch, not to a fixed "
            "max_length. Every extra position is computed for nothing, in every row."
        )
    if ids.shape[1] < longest:
        return (
            f"input_ids has {ids.shape[1]} positions but the longest prompt has {longest} "
            "tokens: your padding cuts prompts short."
        )
    if mask.shape != ids.shape:
        return (
            f"attention_mask has shape {tuple(mask.shape)} but input_ids {tuple(ids.shape)}; "
            "they must match, one mask value per position."
        )
    if not torch.equal(ids, expected["input_ids"]):
        if torch.equal(ids, right["input_ids"]):
            return (
                "it pads on the right. A model generates after the last position of each row, "
                "and for the shorter prompts that would be a pad token: their answers would "
                "continue from padding, not from the prompt. Put the pads before each prompt: "
                "[pad_id] * (longest - len(seq)) + seq."
            )
        return _first_row_difference("input_ids", ids, expected["input_ids"], "pad_id")
    if torch.equal(mask, expected["attention_mask"]):
        return None
    if torch.equal(mask, 1 - expected["attention_mask"]):
        return (
            "the attention mask is inverted: it must be 1 for the prompt's tokens (attend to "
            "them) and 0 for the pads (ignore them)."
        )
    if bool((mask == 1).all()):
        return (
            "the attention mask is all ones, so the model attends to the pad tokens as if they "
            "were part of the prompt: put 0 at each pad position."
        )
    if torch.equal(mask, (ids != pad_id).long()):
        return (
            "the attention mask is 0 wherever a token equals pad_id, but the prompts themselves "
            "contain that id (many models pad with their end-of-turn token, which every chat "
            "prompt holds). Build the mask from each prompt's length, not from the token values."
        )
    if torch.equal(mask, right["attention_mask"]):
        return (
            "the attention mask marks the prompt at the right end of each row, but the ids are "
            "padded on the left: the 1s must sit where each prompt's tokens are."
        )
    return _first_row_difference("attention_mask", mask, expected["attention_mask"], "0")


def _first_row_difference(label: str, got: torch.Tensor, expected: torch.Tensor, pad: str) -> str:
    row = next(i for i in range(len(expected)) if not torch.equal(got[i], expected[i]))
    return (
        f"row {row} of {label} is {got[row].tolist()}, expected {expected[row].tolist()} "
        f"(each prompt at the right end of its row, {pad} before it)."
    )
