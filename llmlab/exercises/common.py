"""What every exercise checker shares: the error a student sees, the chats the checkers try, and
how a student's function is called and described."""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from llmlab.errors import LLMLabError
from llmlab.messages import Message
from llmlab.prompts import SYSTEM_PROMPT


class ExerciseError(LLMLabError, AssertionError):
    """A student's answer is wrong; the message says how, and what to change."""

    def _render_traceback_(self) -> list[str]:
        """What IPython and Jupyter show instead of a traceback: the student's own traceback
        when their function raised, then the message; never the checker's frames."""
        lines = []
        if self.__cause__ is not None:
            lines += "".join(traceback.format_exception(self.__cause__)).splitlines() + [""]
        return [*lines, f"{type(self).__name__}: {self}"]


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
ROLE_LABEL = re.compile(r"(?im)^\W*(user|assistant|system|human)\s*:")


def call_student(
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


def kind_of(value: object) -> str:
    """What a student's function returned, in words; None usually means a missing return."""
    if value is None:
        return "None (is a `return` missing?)"
    return f"a {type(value).__name__}"


def function_name(function: Callable[..., Any]) -> str:
    name = getattr(function, "__name__", "")
    return name if name.isidentifier() else "your function"


def shorten(text: str, limit: int = 160) -> str:
    """A value shown in a message, cut to a line or two: a body may hold 1000 messages."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def passed(message: str) -> None:
    print(f"✓ {message}")
