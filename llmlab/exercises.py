"""Checkers a student runs on their own answer to a chapter's exercise.

A student learns more from "your prompt has no generation prompt at the end: the model does not
know it is its turn" than from a diff of two strings, and nothing from a traceback into a
checker. So each checker runs the student's function on a few cases, compares it with the
course's own code (the tokenizer's chat template, ``LeftPaddingCollator``, ``RequestRecord``,
``read_gguf``, the request schemas of the course's Ollama server and of its service), never with
hard-coded answers that could drift from it, and when they differ it recognizes the
usual mistakes and names them in the exercise's terms, with the fix. Anything else gets the first
difference, expected next to got.

On success a checker prints one line; on failure it raises ``ExerciseError``, an
``AssertionError`` (so it also fails a test) whose message names the case it failed on. Jupyter
shows that message alone, after the student's own traceback if their function raised, and
pytest hides the checker's frames (``__tracebackhide__``).

>>> from llmlab.exercises import check_chat_prompt
>>> check_chat_prompt(build_prompt)
✓ build_prompt matches the model's chat template on 3 chats
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os
import re
import traceback
from collections.abc import Callable, Mapping, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from llmlab.batching import LeftPaddingCollator
from llmlab.bench.records import RequestRecord
from llmlab.errors import LLMLabError
from llmlab.messages import Message
from llmlab.prompts import SYSTEM_PROMPT

if TYPE_CHECKING:
    import httpx
    from fastapi import FastAPI
    from pydantic import BaseModel
    from transformers import PreTrainedTokenizerBase

    from llmlab.gguf_files import GGUFSummary


class ExerciseError(LLMLabError, AssertionError):
    """A student's answer is wrong; the message says how, and what to change."""

    def _render_traceback_(self) -> list[str]:
        """What IPython and Jupyter show instead of a traceback: the student's own traceback
        when their function raised, then the message; never the checker's frames."""
        lines = []
        if self.__cause__ is not None:
            lines += "".join(traceback.format_exception(self.__cause__)).splitlines() + [""]
        return [*lines, f"{type(self).__name__}: {self}"]


# ---------------------------------------------------------------------------------------------
# Chapter 01: the chat prompt
# ---------------------------------------------------------------------------------------------

#: The chats ``build_prompt`` is tried on, named as the messages say them.
CHATS: dict[str, list[Message]] = {
    "a chat with one user turn": [{"role": "user", "content": "What is the capital of France?"}],
    "a chat with a system message and a user turn": [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "Name three primary colors."},
    ],
    "a conversation with an assistant turn": [
        {"role": "user", "content": "What is 12 times 12?"},
        {"role": "assistant", "content": "12 times 12 is 144."},
        {"role": "user", "content": "And 13 times 13?"},
    ],
}

#: "User:" at the start of a line: the source chapter's hand-written format.
_ROLE_LABEL = re.compile(r"(?im)^\W*(user|assistant|system|human)\s*:")


def check_chat_prompt(
    build_prompt: Callable[[PreTrainedTokenizerBase, list[Message]], str],
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> None:
    """Check ``build_prompt(tokenizer, messages) -> str`` against the tokenizer's chat template.

    ``tokenizer`` defaults to the course model's (``llmlab.models.resolve_model()``).
    """
    from jinja2 import TemplateError  # installed wherever chat templates work

    __tracebackhide__ = True
    name = _name(build_prompt)
    tokenizer = tokenizer if tokenizer is not None else _default_tokenizer()
    checked = 0
    for case, messages in CHATS.items():
        try:
            expected = _template(tokenizer, messages)
        except TemplateError:  # some templates refuse a system message: not the student's fault
            continue
        got = _call(build_prompt, (tokenizer, copy.deepcopy(messages)), f"{name}, on {case}")
        if got != expected:
            problem = _chat_prompt_problem(tokenizer, messages, got, expected)
            raise ExerciseError(f"{name}, on {case}: {problem}")
        checked += 1
    _passed(f"{name} matches the model's chat template on {checked} chats")


def _template(
    tokenizer: PreTrainedTokenizerBase, messages: list[Message], generation_prompt: bool = True
) -> str:
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )


def _chat_prompt_problem(
    tokenizer: PreTrainedTokenizerBase, messages: list[Message], got: object, expected: str
) -> str:
    if _is_token_ids(got):
        return (
            f"it returned token ids ({type(got).__name__}), not text. Pass tokenize=False to "
            "apply_chat_template: the exercise asks for the text the model sees."
        )
    if not isinstance(got, str):
        return f"it returned {_kind(got)}; return the prompt as a str."
    special = [token for token in tokenizer.all_special_tokens if token in expected]
    if (_ROLE_LABEL.search(got) and not _ROLE_LABEL.search(expected)) or (
        special and not any(token in got for token in special)
    ):
        return (
            "your prompt is not in this model's chat format: it looks written by hand, like "
            "the source chapter's 'User: ...\\nAssistant:'. Use the model's own chat template, "
            "tokenizer.apply_chat_template(messages, tokenize=False, "
            "add_generation_prompt=True): each model is trained on its own format, with its own "
            f"special tokens (this one: {', '.join(special) or 'none'}), and answers poorly in "
            "any other."
        )
    no_turn = _template(tokenizer, messages, generation_prompt=False)
    no_generation_prompt = (
        "your prompt has no generation prompt at the end: the model does not know it is its "
        "turn, so it may go on writing the user's message. Pass add_generation_prompt=True"
        + (
            f"; the prompt must end with {expected[len(no_turn) :]!r}."
            if expected.startswith(no_turn)
            else "."
        )
    )
    if got == no_turn:
        return no_generation_prompt
    for message in messages:
        if message["content"] not in got:
            if message["role"] == "system":
                return (
                    f"the system message ({message['content']!r}) is missing from your prompt, "
                    "so the model never sees its instructions (and some templates put a "
                    "default one in its place). Pass every message, the system one included, "
                    "to apply_chat_template."
                )
            return (
                f"the {message['role']} message {message['content']!r} is missing from your "
                "prompt. Pass the whole conversation, every turn in order, to "
                "apply_chat_template: the model remembers only what the prompt holds."
            )
    if got and expected.startswith(got):
        return no_generation_prompt
    return (
        f"{_first_difference(expected, got)}\nCompare with print(tokenizer.apply_chat_template("
        "messages, tokenize=False, add_generation_prompt=True))."
    )


def _is_token_ids(value: object) -> bool:
    if isinstance(value, Mapping):  # a BatchEncoding: what apply_chat_template returns tokenized
        return "input_ids" in value
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point()
    return (
        isinstance(value, list | tuple)
        and bool(value)
        and all(isinstance(item, int) or _is_token_ids(item) for item in value)
    )


def _first_difference(expected: str, got: str, context: int = 30) -> str:
    pairs = zip(expected, got, strict=False)
    at = next((i for i, (e, g) in enumerate(pairs) if e != g), min(len(expected), len(got)))
    start = max(0, at - context)
    dots = "..." if start else ""
    return (
        f"your prompt differs from the model's chat template at character {at}:\n"
        f"  expected {dots}{expected[start : at + context]!r}\n"
        f"  got      {dots}{got[start : at + context]!r}"
    )


@functools.lru_cache(maxsize=1)
def _default_tokenizer() -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    from llmlab.models import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model())


# ---------------------------------------------------------------------------------------------
# Chapter 02: left padding
# ---------------------------------------------------------------------------------------------

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
    name = _name(pad_batch)
    for case, sequences, pad_id in PADDING_CASES:
        where = f"{name}, on {case} (sequences={sequences}, pad_id={pad_id})"
        result = _call(pad_batch, (copy.deepcopy(sequences), pad_id), where)
        problem = _padding_problem(result, sequences, pad_id)
        if problem:
            raise ExerciseError(f"{where}: {problem}")
    _passed(f"{name} pads on the left like LeftPaddingCollator on {len(PADDING_CASES)} batches")


def _padding_problem(result: object, sequences: list[list[int]], pad_id: int) -> str | None:
    if isinstance(result, Mapping):
        return "it returned a dict; return a tuple: `return input_ids, attention_mask`."
    if not isinstance(result, tuple | list) or len(result) != 2:
        return (
            f"it returned {_kind(result)}; return two tensors, `return input_ids, attention_mask`."
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


# ---------------------------------------------------------------------------------------------
# Chapter 03: serving metrics
# ---------------------------------------------------------------------------------------------

#: (case, sent_s, chunk_times_s, output_tokens): requests as a client records them.
METRIC_CASES: list[tuple[str, float, list[float], int]] = [
    ("an answer of 5 tokens in 5 chunks", 1000.0, [1000.25, 1000.3, 1000.36, 1000.41, 1000.47], 5),
    ("an answer of 9 tokens in 3 chunks", 2000.0, [2000.5, 2000.6, 2000.8], 9),
    ("a one-token answer", 3000.0, [3000.2], 1),
]
METRIC_KEYS = ("ttft_s", "tpot_s", "e2e_s")


def check_serving_metrics(metrics: Callable[[float, list[float], int], dict]) -> None:
    """Check ``metrics(sent_s, chunk_times_s, output_tokens) -> {"ttft_s", "tpot_s", "e2e_s"}``
    against ``RequestRecord``, which follows vLLM's serving benchmark."""
    __tracebackhide__ = True
    name = _name(metrics)
    for case, sent_s, chunk_times_s, tokens in METRIC_CASES:
        where = (
            f"{name}, on {case} "
            f"(sent_s={sent_s}, chunk_times_s={chunk_times_s}, output_tokens={tokens})"
        )
        hints = {}
        if tokens == 1:
            hints[ZeroDivisionError] = (
                "A one-token answer has no tokens after the first, so it has no TPOT: return "
                "None for tpot_s when output_tokens is 1, instead of dividing by 0."
            )
        got = _call(metrics, (sent_s, list(chunk_times_s), tokens), where, hints)
        record = RequestRecord(sent_s, list(chunk_times_s), usage_tokens=tokens)
        problem = _metrics_problem(got, record)
        if problem:
            raise ExerciseError(f"{where}: {problem}")
    _passed(f"{name} matches vLLM's serving-benchmark definitions on {len(METRIC_CASES)} requests")


def _metrics_problem(got: object, record: RequestRecord) -> str | None:
    if not isinstance(got, Mapping):
        return f"it returned {_kind(got)}; return a dict with the keys {METRIC_KEYS}."
    missing = [key for key in METRIC_KEYS if key not in got]
    if missing:
        return f"the dict lacks {missing} (it has {sorted(map(str, got))}); use {METRIC_KEYS}."
    for key in METRIC_KEYS:
        value = got[key]
        if not (value is None and key == "tpot_s") and not _is_number(value):
            return f"{key} is {value!r}; it must be a number of seconds."
    return (
        _ttft_problem(got["ttft_s"], record)
        or _e2e_problem(got["e2e_s"], record)
        or _tpot_problem(got["tpot_s"], record)
    )


def _ttft_problem(ttft: float, record: RequestRecord) -> str | None:
    times = record.chunk_times_s
    if _close(ttft, record.ttft_s):
        return None
    if _close(ttft, times[0]):
        return "ttft_s is a clock reading (the first chunk's), not a duration: subtract sent_s."
    if len(times) > 1 and _close(ttft, times[1] - times[0]):
        return (
            "ttft_s is the gap from the first chunk to the second (that is an inter-token "
            "latency). TTFT starts when the request is sent: chunk_times_s[0] - sent_s."
        )
    return (
        f"ttft_s is {ttft:.6g} s, expected {record.ttft_s:.6g} s. TTFT is the time from sending "
        "the request to the first chunk: chunk_times_s[0] - sent_s."
    )


def _e2e_problem(e2e: float, record: RequestRecord) -> str | None:
    times = record.chunk_times_s
    if _close(e2e, record.e2e_s):
        return None
    if len(times) > 1 and _close(e2e, record.ttft_s):
        return (
            "e2e_s stops at the first chunk, so it equals TTFT. End-to-end latency runs until the "
            "answer is complete, the last chunk: chunk_times_s[-1] - sent_s."
        )
    if _close(e2e, times[-1]):
        return "e2e_s is a clock reading (the last chunk's), not a duration: subtract sent_s."
    if len(times) > 1 and _close(e2e, times[-1] - times[0]):
        return (
            "e2e_s starts at the first chunk. It starts when the request is sent, so that it "
            "includes queueing and prefill: chunk_times_s[-1] - sent_s."
        )
    return (
        f"e2e_s is {e2e:.6g} s, expected {record.e2e_s:.6g} s. E2E is the time from sending the "
        "request to the last chunk: chunk_times_s[-1] - sent_s."
    )


def _tpot_problem(tpot: float | None, record: RequestRecord) -> str | None:
    expected, tokens = record.tpot_s, record.output_tokens
    if expected is None:
        if tpot is None:
            return None
        return (
            f"tpot_s is {tpot!r} for a one-token answer. It has no tokens after the first, so "
            "its TPOT is undefined: return None (vLLM leaves such requests out of the TPOT "
            "figures; a 0 would pull the average down)."
        )
    if tpot is None:
        return f"tpot_s is None for an answer of {tokens} tokens; only a one-token answer has none."
    if _close(tpot, expected):
        return None
    after_first = record.e2e_s - record.ttft_s
    chunks = len(record.chunk_times_s)
    formula = "TPOT = (e2e_s - ttft_s) / (output_tokens - 1)"
    if _close(tpot, after_first / tokens):
        return (
            "tpot_s divides by output_tokens. The first token's time is TTFT, already "
            f"subtracted, so divide by the tokens after the first: {formula}."
        )
    if _close(tpot, record.e2e_s / tokens):
        return (
            "tpot_s spreads the whole E2E over all the tokens, the first included: the wait for "
            f"the first token (TTFT) is not a time per output token. {formula}."
        )
    if _close(tpot, record.e2e_s / (tokens - 1)):
        return f"tpot_s does not subtract TTFT from E2E: {formula}."
    if chunks != tokens and chunks > 1 and _close(tpot, after_first / (chunks - 1)):
        return (
            f"tpot_s counts chunks ({chunks}) instead of tokens ({tokens}): one chunk can "
            "carry several tokens. Divide by output_tokens - 1, the server's count; the mean "
            f"gap between chunks is the inter-token latency, another figure. {formula}."
        )
    return f"tpot_s is {tpot:.6g} s, expected {expected:.6g} s: {formula}."


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


# ---------------------------------------------------------------------------------------------
# Chapter 04: what a GGUF file says about itself
# ---------------------------------------------------------------------------------------------

GGUF_KEYS = ("architecture", "context_length", "quantization", "tensors")
_TEXT_KEYS = ("architecture", "quantization")

#: The file the checker writes beside the one it is given: another architecture, context length
#: and file type, so that ``"llama.context_length"`` or a value copied from the course's file
#: fails. (architecture, context length, file type name, tensors per storage type).
_TINY_GGUF = ("qwen2", 32768, "MOSTLY_Q4_K_M", {"Q4_K": 6, "Q6_K": 1, "F32": 3})


def check_gguf_summary(
    describe_gguf: Callable[[str], dict], path: str | os.PathLike[str] | None = None
) -> None:
    """Check ``describe_gguf(path) -> {"architecture", "context_length", "quantization",
    "tensors"}`` against ``llmlab.gguf_files.read_gguf``.

    ``path`` defaults to the course's GGUF file (``llmlab.models.default_gguf()``); the checker
    also tries a tiny file of another architecture that it writes, so that an answer that only
    fits llama files (a ``"llama.context_length"`` key) fails. ``quantization`` is the name of
    ``general.file_type`` as llama.cpp spells it, ``"MOSTLY_Q4_1"``, or without its ``MOSTLY_``
    (or ``ALL_``) prefix, ``"Q4_1"``, in any case: both name the same file type.
    """
    import tempfile

    from llmlab.models import default_gguf

    __tracebackhide__ = True
    name = _name(describe_gguf)
    path = Path(path) if path is not None else default_gguf()
    with tempfile.TemporaryDirectory() as folder:
        architecture, context_length, file_type, tensors = _TINY_GGUF
        tiny = _write_gguf(
            Path(folder) / "tiny.gguf", architecture, context_length, file_type, tensors
        )
        files = [
            (path.name, path),
            (f"a tiny {architecture} GGUF file that the checker wrote ({tiny.name})", tiny),
        ]
        for case, file in files:
            _check_one_gguf(describe_gguf, f"{name}, on {case}", file)
    _passed(f"{name} describes {path.name} and a {architecture} file as read_gguf does")


def _check_one_gguf(describe_gguf: Callable[[str], dict], where: str, path: Path) -> None:
    from llmlab.gguf_files import read_gguf

    __tracebackhide__ = True
    summary = read_gguf(path)
    architecture = summary.metadata["general.architecture"]
    key = f"{architecture}.context_length"
    hints = {
        KeyError: (
            "A GGUF file has the keys its header lists (print(list(reader.fields)) shows them). "
            f"This one's architecture is {architecture!r}, so its context length is under "
            f"{key!r}: build that key from general.architecture, "
            "f'{architecture}.context_length', rather than writing 'llama.'."
        )
    }
    got = _call(describe_gguf, (str(path),), where, hints)
    problem = _gguf_problem(got, summary)
    if problem:
        raise ExerciseError(f"{where}: {problem}")


def _gguf_problem(got: object, summary: GGUFSummary) -> str | None:
    if not isinstance(got, Mapping):
        return f"it returned {_kind(got)}; return a dict with the keys {GGUF_KEYS}."
    missing = [key for key in GGUF_KEYS if key not in got]
    if missing:
        return f"the dict lacks {missing} (it has {sorted(map(str, got))}); use {GGUF_KEYS}."
    for key in GGUF_KEYS:
        problem = _raw_gguf_value(key, got[key])
        if problem:
            return problem
    return (
        _architecture_problem(got["architecture"], summary)
        or _context_length_problem(got["context_length"], summary)
        or _quantization_problem(got["quantization"], summary)
        or _tensor_count_problem(got["tensors"], summary)
    )


#: How to take each value out of its GGUFReader field: the course's way, and by hand.
_GGUF_VALUE_OF = {
    "architecture": ("field.contents()", "bytes(field.parts[field.data[0]]).decode()"),
    "context_length": ("field.contents()", "int(field.parts[field.data[0]][0])"),
    "quantization": (
        "gguf.LlamaFileType(field.contents()).name",
        "gguf.LlamaFileType(int(field.parts[field.data[0]][0])).name",
    ),
    "tensors": ("len(reader.tensors)", "int(field.parts[field.data[0]][0]) of GGUF.tensor_count"),
}


def _raw_gguf_value(key: str, value: object) -> str | None:
    """Say so when a value is still in GGUFReader's raw form (a field, numpy, bytes)."""
    import numpy as np
    from gguf import ReaderField

    text = key == "architecture"
    course, by_hand = _GGUF_VALUE_OF[key]
    value_of = (
        f"Take {course} (llmlab.gguf_files.read_gguf reads every field with field.contents()), "
        f"or by hand {by_hand}"
    )
    if isinstance(value, ReaderField):
        return (
            f"{key} is the GGUFReader field itself (a ReaderField), not its value. A field holds "
            "the raw pieces of a key-value pair as they lie in the file (field.parts: the key's "
            "length, the key, the type, the value) and the indexes of the pieces that hold the "
            f"value (field.data). {value_of}."
        )
    if isinstance(value, np.ndarray):
        what = (
            "the bytes of the text"
            if value.dtype == np.uint8
            else "a one-element array holding the number"
        )
        return (
            f"{key} is a numpy array ({_short(repr(value))}): {what}, as field.parts stores it. "
            f"{value_of}."
        )
    if key == "quantization" and _is_integer(value):
        return None  # general.file_type's number: _quantization_problem names it
    if isinstance(value, np.generic):
        fix = "str(...)" if text else "int(...)"
        return (
            f"{key} is a numpy {type(value).__name__} ({value}); make it a Python "
            f"{'str' if text else 'int'} with {fix}: numpy values do not go into JSON."
        )
    if isinstance(value, bytes | bytearray):
        return f"{key} is {type(value).__name__} ({_short(repr(value))}); decode it: .decode()."
    if key == "tensors" and isinstance(value, list | tuple):
        return "tensors is the list of tensors itself; return how many: len(reader.tensors)."
    if isinstance(value, list):
        return (
            f"{key} is a list ({_short(repr(value))}). If it is field.data: that holds the "
            f"indexes of the parts that hold the value, not the value. {value_of}."
        )
    if isinstance(value, str) and re.fullmatch(r"\[[\d\s,]+\]", value):
        return f"{key} is {_short(repr(value))}, a numpy array printed as text. {value_of}."
    if key in _TEXT_KEYS and not isinstance(value, str):
        return f"{key} is {_kind(value)}; return a str."
    if key not in _TEXT_KEYS and not _is_integer(value):
        return f"{key} is {_kind(value)} ({_short(repr(value))}); return an int."
    return None


def _is_integer(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _architecture_problem(got: str, summary: GGUFSummary) -> str | None:
    expected = summary.metadata["general.architecture"]
    if got == expected:
        return None
    return (
        f"architecture is {got!r}, but this file's general.architecture is {expected!r}: read "
        "it from the file, reader.fields['general.architecture'].contents()."
    )


def _context_length_problem(got: int, summary: GGUFSummary) -> str | None:
    architecture = summary.metadata["general.architecture"]
    key = f"{architecture}.context_length"
    expected = summary.metadata[key]
    if got == expected:
        return None
    other = next(
        (name for name, value in summary.metadata.items() if value == got and name != key), None
    )
    read_instead = (
        f"the context length is under {key!r}: build the key from general.architecture, "
        "f'{architecture}.context_length'."
    )
    if other:
        return f"context_length is {got}, the value of {other!r}; {read_instead}"
    return (
        f"context_length is {got}, but this file's {key} is {expected}. Read it from the file "
        f"(not from the model card, nor from a llama file): {read_instead}"
    )


def _quantization_problem(got: str | int, summary: GGUFSummary) -> str | None:
    number = summary.metadata.get("general.file_type")
    expected = _quantization_name(summary)
    if _is_integer(got):
        got = int(got)
        if got == number:
            return (
                f"quantization is {got}, the number general.file_type stores; give its name: "
                f"gguf.LlamaFileType({got}).name is {_file_type_name(got)!r} ({expected!r} is "
                "fine too)."
            )
        return f"quantization is {_kind(got)} ({got!r}); return the file type's name, a str."
    normal = _normal_quantization(got)
    if normal == expected:
        return None
    if normal in summary.tensor_types:
        count = summary.tensor_types[normal]
        return (
            f"quantization is {got!r}, the type {count} of the {sum(summary.tensor_types.values())}"
            f" tensors are stored in. A file mixes storage types (here {summary.tensor_types}); "
            f"its file type, general.file_type, names the recipe it was quantized with: "
            f"{expected!r}. Read general.file_type and name it with gguf.LlamaFileType(...).name."
        )
    source = (
        f"general.file_type is {number}, and gguf.LlamaFileType({number}).name is "
        f"{_file_type_name(number)!r}"
        if number is not None
        else "this file has no general.file_type"
    )
    return (
        f"quantization is {got!r}, expected {expected!r}: {source}. Read it from the file's "
        "metadata, not from its name."
    )


def _quantization_name(summary: GGUFSummary) -> str:
    """``general.file_type``'s name, normalized; for a file without one (old converters), the
    storage type of most of its tensors."""
    number = summary.metadata.get("general.file_type")
    if isinstance(number, int):
        return _normal_quantization(_file_type_name(number))
    return max(summary.tensor_types, key=summary.tensor_types.__getitem__)


def _file_type_name(number: int) -> str:
    from gguf import LlamaFileType

    try:
        return LlamaFileType(number).name
    except ValueError:
        return str(number)


def _normal_quantization(name: str) -> str:
    """``"MOSTLY_Q4_1"``, ``"q4_1"`` and ``"Q4_1"`` alike: the same file type."""
    return name.strip().upper().removeprefix("MOSTLY_").removeprefix("ALL_")


def _tensor_count_problem(got: int, summary: GGUFSummary) -> str | None:
    expected = sum(summary.tensor_types.values())
    if got == expected:
        return None
    fix = "count the tensors themselves: len(reader.tensors)"
    quantized = sum(n for kind, n in summary.tensor_types.items() if kind not in ("F32", "F16"))
    mistakes = {
        len(summary.metadata): "the number of metadata fields, len(reader.fields)",
        summary.metadata["GGUF.kv_count"]: "the number of metadata keys (GGUF.kv_count)",
        summary.parameters: "the number of weights (parameters), not of tensors",
        len(summary.tensor_types): "the number of storage types, not of tensors",
        quantized: "the number of quantized tensors; the F32 ones (the norms) count too",
    }
    if got in mistakes:
        return f"tensors is {got}: {mistakes[got]}. It should be {expected}: {fix}."
    return f"tensors is {got}, expected {expected}: {fix}."


def _write_gguf(
    path: Path, architecture: str, context_length: int, file_type: str, tensors: dict[str, int]
) -> Path:
    """Write a GGUF file of a few KiB: the given metadata and ``tensors`` (storage type -> how
    many) of 256 weights each, all zeros. It describes itself like a real one; it runs nothing."""
    import numpy as np
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter, LlamaFileType

    writer = GGUFWriter(path, arch=architecture)
    writer.add_name(f"tiny {architecture}")
    writer.add_block_count(1)
    writer.add_context_length(context_length)
    writer.add_file_type(LlamaFileType[file_type])
    index = 0
    for kind, count in tensors.items():
        quant = GGMLQuantizationType[kind]
        block, size = GGML_QUANT_SIZES[quant]
        for _ in range(count):
            data = np.zeros(256 // block * size, dtype=np.uint8)
            writer.add_tensor(f"blk.{index}.weight", data, raw_dtype=quant)
            index += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# ---------------------------------------------------------------------------------------------
# Chapter 05: the body of Ollama's POST /api/chat
# ---------------------------------------------------------------------------------------------

#: The model name chapter 05 creates with its Modelfile.
OLLAMA_MODEL = "course-assistant"

#: (case, messages, keyword arguments). The last leaves ``stream`` to its default (False).
OLLAMA_CASES: list[tuple[str, list[Message], dict[str, Any]]] = [
    (
        "a chat with a system message and a user turn, not streamed",
        CHATS["a chat with a system message and a user turn"],
        {"temperature": 0.2, "max_tokens": 64, "stream": False},
    ),
    (
        "a conversation with an assistant turn, streamed, at temperature 0",
        CHATS["a conversation with an assistant turn"],
        {"temperature": 0.0, "max_tokens": 32, "stream": True},
    ),
    (
        "a chat with one user turn, stream left to its default",
        CHATS["a chat with one user turn"],
        {"temperature": 0.7, "max_tokens": 128},
    ),
]

#: Sampling settings by Ollama's names and by other servers': all belong in ``options``.
_SAMPLING_NAMES = ("max_tokens", "max_new_tokens", "n_predict", "num_predict", "num_ctx",
                   "temperature", "top_p", "top_k", "seed", "stop")  # fmt: skip


def check_ollama_chat_body(chat_body: Callable[..., dict]) -> None:
    """Check ``chat_body(model, messages, *, temperature, max_tokens, stream=False) -> dict``,
    the JSON body of Ollama's ``POST /api/chat``, as the course's Ollama-compatible server reads
    it (``llmlab.ollama.schemas``): the messages as given, the sampling settings in ``options``
    by Ollama's names, ``stream`` as asked (Ollama streams when it is left out)."""
    __tracebackhide__ = True
    name = _name(chat_body)
    for case, messages, settings in OLLAMA_CASES:
        arguments = ", ".join(f"{key}={value!r}" for key, value in settings.items())
        where = f"{name}, on {case} ({name}({OLLAMA_MODEL!r}, messages, {arguments}))"
        call = functools.partial(chat_body, **settings)
        got = _call(call, (OLLAMA_MODEL, copy.deepcopy(messages)), where)
        problem = _chat_body_problem(got, messages, settings.get("stream", False), settings)
        if problem:
            raise ExerciseError(f"{where}: {problem}")
    _passed(
        f"{name} builds /api/chat bodies that Ollama reads as asked, on {len(OLLAMA_CASES)} chats"
    )


def _chat_body_problem(
    got: object, messages: list[Message], stream: bool, settings: Mapping[str, Any]
) -> str | None:
    from pydantic import ValidationError

    from llmlab.ollama.schemas import ApiError, ChatBody, _explain, refuse_unsupported

    if isinstance(got, str | bytes):
        return (
            f"it returned {_kind(got)}, JSON text; return the dict: the client serializes it "
            "(requests.post(url, json=body), httpx.post(url, json=body))."
        )
    if not isinstance(got, Mapping):
        return f"it returned {_kind(got)}; return the body as a dict."
    try:
        text = json.dumps(got)
    except (TypeError, ValueError) as error:
        return f"the body cannot be sent as JSON ({error}); use str, numbers, lists and dicts."
    flattened = _flattened(got, messages)
    if flattened:
        return flattened
    top_level = [key for key in _SAMPLING_NAMES if key in got]
    if top_level:
        return (
            f"{', '.join(top_level)} {'is' if len(top_level) == 1 else 'are'} at the top level of "
            'the body. Ollama reads sampling settings from "options" and ignores unknown fields '
            "without a word, so the model would sample with its defaults. Put them in options, "
            'by Ollama\'s names: "options": {"temperature": temperature, "num_predict": '
            "max_tokens} (the token limit is num_predict)."
        )
    if "system" in got and not any(m.get("role") == "system" for m in _dicts(got, "messages")):
        how = 'it sits in a top-level "system" field, which /api/chat ignores'
        return _system_dropped(messages, how)
    unknown = sorted(set(map(str, got)) - set(ChatBody.model_fields))
    if unknown:
        return (
            f"the body has fields /api/chat does not know: {unknown}. Ollama ignores unknown "
            "fields without a word, so whatever they meant is lost. Send model, messages, "
            "stream and options."
        )
    try:
        body = ChatBody.model_validate_json(text)
        refuse_unsupported(body)
    except ValidationError as error:
        return f"the server refuses this body (400): {_explain(error)}."
    except ApiError as error:
        return f"the server refuses this body ({error.status}): {error.message}."
    return (
        _stream_problem(got, stream)
        or _model_problem(body.model)
        or _messages_problem(
            [m.model_dump(include={"role", "content"}) for m in body.messages], messages
        )
        or _options_problem(got.get("options"), settings)
    )


def _dicts(body: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = body.get(key)
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _flattened(got: Mapping[str, Any], messages: list[Message]) -> str | None:
    """The source chapter's chat: the conversation as one text, roles written as labels."""
    sent = _dicts(got, "messages")
    one_text = (
        len(sent) == 1 and len(messages) > 1 and _ROLE_LABEL.search(str(sent[0].get("content", "")))
    )
    if "prompt" not in got and not one_text:
        return None
    where = 'a "prompt" field' if "prompt" in got else "one message of 'role: text' lines"
    return (
        f"it flattens the conversation into {where}, as the source chapter's chat did for "
        '/api/generate. Send the messages as they are, "messages": messages, to /api/chat: '
        "the server formats them with the model's own chat template, each turn in its place "
        "and the system message included; a model reads 'user: ...' lines as one user turn "
        "that happens to contain those words."
    )


def _system_dropped(messages: list[Message], how: str) -> str:
    system = next(m["content"] for m in messages if m["role"] == "system")
    return (
        f"the system message ({system!r}) is not among the messages: {how}. The model would "
        "get the Modelfile's SYSTEM instead of the chat's own. Send every message, the system "
        "one first, as they are."
    )


def _stream_problem(got: Mapping[str, Any], stream: bool) -> str | None:
    if "stream" not in got:
        if not stream:
            return (
                '"stream" is missing, and Ollama streams by default: the caller asked for one '
                "JSON object and would get NDJSON, one object per piece of the answer. Always "
                'send "stream": stream.'
            )
        return None
    if not isinstance(got["stream"], bool):
        return (
            f'"stream" is {got["stream"]!r}; send a JSON boolean, {stream} (Ollama refuses '
            "anything else)."
        )
    if got["stream"] != stream:
        return (
            f'"stream" is {got["stream"]} but the caller asked for stream={stream}: pass the '
            'argument on, "stream": stream.'
        )
    return None


def _model_problem(model: str) -> str | None:
    if model == OLLAMA_MODEL:
        return None
    return f'"model" is {model!r}, but the caller asked for {OLLAMA_MODEL!r}: pass it on.'


def _messages_problem(sent: list[dict[str, Any]], messages: list[Message]) -> str | None:
    expected = [{"role": m["role"], "content": m["content"]} for m in messages]
    if sent == expected:
        return None
    if any(m["role"] == "system" for m in expected) and not any(
        m["role"] == "system" for m in sent
    ):
        return _system_dropped(messages, "your body drops it")
    if not sent:
        return '"messages" is empty or missing; send the conversation, "messages": messages.'
    at = next(
        (i for i, (e, g) in enumerate(zip(expected, sent, strict=False)) if e != g),
        min(len(expected), len(sent)),
    )
    return (
        f"the messages differ from the ones given, from message {at}: expected "
        f"{expected[at] if at < len(expected) else 'no more'}, got "
        f"{sent[at] if at < len(sent) else 'no more'}. Send them as they are, every turn in "
        "order: the server applies the chat template."
    )


def _options_problem(options: object, settings: Mapping[str, Any]) -> str | None:
    from llmlab.ollama.schemas import ApiError, llama_options

    temperature, max_tokens = settings["temperature"], settings["max_tokens"]
    options = dict(options) if isinstance(options, Mapping) else {}
    for wrong in ("max_tokens", "max_new_tokens", "n_predict"):
        if wrong in options:
            return (
                f'options has "{wrong}"; Ollama calls the token limit "num_predict" (max_tokens '
                "is OpenAI's name, which only Ollama's /v1 endpoints take): "
                '"options": {"temperature": temperature, "num_predict": max_tokens}.'
            )
    try:
        got = llama_options(options)
    except ApiError as error:
        return f"the server refuses these options ({error.status}): {error.message}."
    if "temperature" not in options:
        zero = (
            f" temperature={temperature} is a value, greedy decoding: an `if temperature:` "
            "drops it, test `is not None` if anything."
            if temperature == 0
            else ""
        )
        return (
            f"options lacks temperature, so the model samples at its default (Modelfile "
            f"PARAMETER or 0.8) instead of {temperature}.{zero}"
        )
    if "num_predict" not in options:
        return (
            "options lacks num_predict, Ollama's token limit: the answer would run until the "
            f"model stops or the context is full, instead of at most {max_tokens} tokens."
        )
    expected = llama_options({"temperature": temperature, "num_predict": max_tokens})
    for name, server_name in (("temperature", "temperature"), ("num_predict", "n_predict")):
        if got[server_name] != expected[server_name]:
            asked = temperature if name == "temperature" else max_tokens
            return f"options.{name} is {options[name]!r}, but the caller asked for {asked!r}."
    extra = sorted(set(options) - {"temperature", "num_predict"})
    if extra:
        return (
            f"options also sets {extra}, which the caller did not ask for; they would change "
            "the answer behind the caller's back. Send temperature and num_predict only."
        )
    return None


# ---------------------------------------------------------------------------------------------
# Chapter 06: a request model that refuses bad input
# ---------------------------------------------------------------------------------------------

_USER_TURN: Message = {"role": "user", "content": "Hi"}
_LIMITS = (
    "MAX_TOKENS_LIMIT and MAX_MESSAGES come from llmlab.service.schemas, the service's own limits"
)
_BOUND_MAX_TOKENS = (
    "Bound it: max_tokens: int = Field(256, ge=1, le=MAX_TOKENS_LIMIT) (" + _LIMITS + ")."
)
_BOUND_TEMPERATURE = (
    "Bound it: temperature: float = Field(0.7, ge=0, le=2). 0 is greedy decoding; a negative "
    "temperature means nothing, and above 2 the answer is noise."
)

#: (case, body, what to change when the student's model answers otherwise than the course's).
#: Whether each body is valid is the course's own model's verdict
#: (``llmlab.service.schemas.ChatRequest``); the valid ones come first.
REQUEST_CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "a valid chat",
        {
            "messages": [
                CHATS["a chat with a system message and a user turn"][0],
                *CHATS["a conversation with an assistant turn"],
            ],
            "max_tokens": 64,
            "temperature": 0.7,
        },
        "Check the field names (messages with role and content, max_tokens, temperature) and "
        'that the three roles a chat holds are allowed: Literal["system", "user", "assistant"].',
    ),
    (
        "temperature 0 (greedy decoding)",
        {"messages": [_USER_TURN], "max_tokens": 64, "temperature": 0},
        "Temperature 0 is valid, it means greedy decoding: bound it with ge=0, not gt=0.",
    ),
    (
        "a body with messages only",
        {"messages": [_USER_TURN]},
        "Give max_tokens and temperature defaults, so that a client may leave them out: "
        "Field(256, ge=1, le=MAX_TOKENS_LIMIT) and Field(0.7, ge=0, le=2), as the service does.",
    ),
    (
        "a typo, max_token instead of max_tokens",
        {"messages": [_USER_TURN], "max_token": 5},
        'Refuse unknown fields: model_config = ConfigDict(extra="forbid"). Otherwise a typo is '
        "dropped without a word and the request runs with the default the client meant to "
        "change (here max_tokens).",
    ),
    (
        "max_tokens 100000",
        {"messages": [_USER_TURN], "max_tokens": 100_000},
        "One such request would hold the model, and the memory of its KV cache, for minutes "
        "while everyone else waits. " + _BOUND_MAX_TOKENS,
    ),
    (
        "max_tokens 0",
        {"messages": [_USER_TURN], "max_tokens": 0},
        "There is nothing to generate: a client bug to report, not to run. " + _BOUND_MAX_TOKENS,
    ),
    (
        "max_tokens -5",
        {"messages": [_USER_TURN], "max_tokens": -5},
        "A negative count is a client bug to report, not to run. " + _BOUND_MAX_TOKENS,
    ),
    ("temperature -1", {"messages": [_USER_TURN], "temperature": -1}, _BOUND_TEMPERATURE),
    ("temperature 5", {"messages": [_USER_TURN], "temperature": 5}, _BOUND_TEMPERATURE),
    (
        "a message with the role 'robot'",
        {"messages": [{"role": "robot", "content": "Hi"}]},
        'Allow only the roles a chat template knows: role: Literal["system", "user", '
        '"assistant"]. An unknown role makes the template fail (a 500) or writes a turn the '
        "model never saw in training.",
    ),
    (
        "no messages",
        {"messages": []},
        "There is nothing to answer: messages: list[ChatMessage] = Field(min_length=1, "
        "max_length=MAX_MESSAGES).",
    ),
    (
        "1000 messages",
        {"messages": [_USER_TURN] * 1000},
        "The prompt, and with it the memory and time one request takes, grows with every "
        "message: messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES) ("
        + _LIMITS
        + ").",
    ),
]


def check_request_model(ChatRequest: type[BaseModel]) -> None:
    """Check a pydantic ``ChatRequest`` (``messages`` of ``role`` and ``content``,
    ``max_tokens``, ``temperature``) in a FastAPI endpoint, driven in process by
    ``TestClient``: it must accept what the course's service accepts (200) and refuse the rest
    with 422, as ``llmlab.service.schemas.ChatRequest`` does. The first case it answers
    otherwise fails, with what was sent and what came back."""
    from fastapi.testclient import TestClient
    from pydantic import BaseModel, ValidationError

    from llmlab.service.schemas import ChatRequest as CourseRequest

    __tracebackhide__ = True
    name = _name(ChatRequest)
    if isinstance(ChatRequest, BaseModel):
        raise ExerciseError(
            f"you passed an instance of {type(ChatRequest).__name__}; pass the class itself: "
            f"check_request_model({type(ChatRequest).__name__})."
        )
    if not (isinstance(ChatRequest, type) and issubclass(ChatRequest, BaseModel)):
        raise ExerciseError(
            f"{name} is {_kind(ChatRequest)}, not a pydantic model: write "
            "`class ChatRequest(BaseModel):` with the fields as annotations."
        )
    try:
        app = _echo_app(ChatRequest)
    except Exception as error:
        raise ExerciseError(
            f"{name}: FastAPI cannot take it as a request body: {type(error).__name__}: {error}"
        ) from error
    valid = 0
    with TestClient(app, raise_server_exceptions=False) as client:
        for case, body, fix in REQUEST_CASES:
            try:
                CourseRequest.model_validate(body)
                expected = 200
            except ValidationError:
                expected = 422
            response = client.post("/chat", json=body)
            if response.status_code != expected:
                raise ExerciseError(
                    f"{name}, on {case}: sent {_brief(body)}, "
                    f"{_answer(response)}; expected {expected}. {fix}"
                )
            valid += expected == 200
    _passed(
        f"{name} accepts the {valid} valid requests and refuses the "
        f"{len(REQUEST_CASES) - valid} bad ones with 422, like the course's service"
    )


def _echo_app(model: type[BaseModel]) -> FastAPI:
    """One endpoint that takes ``model`` as its body and answers with what it read."""
    from fastapi import FastAPI

    app = FastAPI()

    async def chat(request):  # typed below: the class itself, not a name to resolve
        return request.model_dump(mode="json")

    chat.__annotations__ = {"request": model, "return": dict}
    app.post("/chat")(chat)
    return app


def _brief(body: object) -> str:
    """A JSON body as a message shows it: long lists cut to their first items, and a count."""

    def cut(value: object) -> object:
        if isinstance(value, list) and len(value) > 4:
            return [*map(cut, value[:2]), f"... {len(value) - 2} more"]
        if isinstance(value, list):
            return [cut(item) for item in value]
        if isinstance(value, dict):
            return {key: cut(item) for key, item in value.items()}
        return value

    return _short(json.dumps(cut(body)), limit=320)


def _answer(response: httpx.Response) -> str:
    """What came back, in words: the model's reading of a 200, the first error of a 422."""
    status = response.status_code
    if status == 200:
        return f"it accepted it (200) and read it as {_brief(response.json())}"
    if status == 422:
        detail = response.json().get("detail") or [{}]
        first = detail[0] if isinstance(detail, list) else {}
        where = ".".join(str(part) for part in first.get("loc", []) if part != "body")
        return f"it refused it (422: {where}: {first.get('msg', detail)})"
    return (
        f"it answered {status} ({_short(response.text)}), neither 200 nor 422: a request model "
        "should only accept or refuse"
    )


# ---------------------------------------------------------------------------------------------
# Shared
# ---------------------------------------------------------------------------------------------


def _call(
    function: Callable[..., Any],
    args: Sequence[object],
    where: str,
    hints: Mapping[type[BaseException], str] | None = None,
) -> Any:
    """Run the student's function; if it raises, say on which case, keeping only their frames."""
    __tracebackhide__ = True
    try:
        return function(*args)
    except Exception as error:
        hint = next((text for kind, text in (hints or {}).items() if isinstance(error, kind)), "")
        own_frames = error.__traceback__.tb_next if error.__traceback__ else None
        raise ExerciseError(
            f"{where}: your function raised {type(error).__name__}: {error}. "
            + (hint or "The traceback above points at the line in your function.")
        ) from error.with_traceback(own_frames)


def _kind(value: object) -> str:
    """What a student's function returned, in words; None usually means a missing return."""
    if value is None:
        return "None (is a `return` missing?)"
    return f"a {type(value).__name__}"


def _name(function: Callable[..., Any]) -> str:
    name = getattr(function, "__name__", "")
    return name if name.isidentifier() else "your function"


def _short(text: str, limit: int = 160) -> str:
    """A value shown in a message, cut to a line or two: a body may hold 1000 messages."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _passed(message: str) -> None:
    print(f"✓ {message}")
