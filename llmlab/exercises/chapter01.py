"""Chapter 01's exercise: ``build_prompt``, a chat turned into the model's prompt, checked against
the tokenizer's own chat template."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import torch

from llmlab.exercises.common import (
    CHATS,
    ROLE_LABEL,
    ExerciseError,
    call_student,
    function_name,
    kind_of,
    passed,
)
from llmlab.messages import Message

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def check_chat_prompt(
    build_prompt: Callable[[PreTrainedTokenizerBase, list[Message]], str],
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> None:
    """Check ``build_prompt(tokenizer, messages) -> str`` against the tokenizer's chat template.

    ``tokenizer`` defaults to the course model's (``llmlab.models.resolve_model()``).
    """
    from jinja2 import TemplateError  # installed wherever chat templates work

    __tracebackhide__ = True
    name = function_name(build_prompt)
    tokenizer = tokenizer if tokenizer is not None else _default_tokenizer()
    checked = 0
    for case, messages in CHATS.items():
        try:
            expected = _template(tokenizer, messages)
        except TemplateError:  # some templates refuse a system message: not the student's fault
            continue
        got = call_student(build_prompt, (tokenizer, copy.deepcopy(messages)), f"{name}, on {case}")
        if got != expected:
            problem = _chat_prompt_problem(tokenizer, messages, got, expected)
            raise ExerciseError(f"{name}, on {case}: {problem}")
        checked += 1
    passed(f"{name} matches the model's chat template on {checked} chats")


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
        return f"it returned {kind_of(got)}; return the prompt as a str."
    special = [token for token in tokenizer.all_special_tokens if token in expected]
    if (ROLE_LABEL.search(got) and not ROLE_LABEL.search(expected)) or (
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
