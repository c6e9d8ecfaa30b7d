"""Checkers a student runs on their own answer to a chapter's exercise.

A student learns more from "your prompt has no generation prompt at the end: the model does not
know it is its turn" than from a diff of two strings, and nothing from a traceback into a
checker. So each checker runs the student's function on a few cases, compares it with the
course's own code (the tokenizer's chat template, ``LeftPaddingCollator``, ``RequestRecord``),
never with hard-coded answers that could drift from it, and when they differ it recognizes the
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
import math
import re
import traceback
from collections.abc import Callable, Mapping, Sequence
from numbers import Real
from typing import TYPE_CHECKING, Any

import torch

from llmlab.batching import LeftPaddingCollator
from llmlab.bench.records import RequestRecord
from llmlab.errors import LLMLabError
from llmlab.generation import Message
from llmlab.prompts import SYSTEM_PROMPT

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


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


def _passed(message: str) -> None:
    print(f"✓ {message}")
