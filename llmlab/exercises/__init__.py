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

One module per chapter (``chapter01`` ... ``chapter08``), imported when its checker is first
used: the checkers of chapters 03-08 do not load PyTorch. Chapter 07's runs the student's
function against a real llama-server, which the chapter has running.
"""

from llmlab.lazy import lazy_exports

#: Each checker, and the module it lives in.
_EXPORTS = {
    "ExerciseError": "llmlab.exercises.common",
    "check_chat_prompt": "llmlab.exercises.chapter01",
    "check_left_padding": "llmlab.exercises.chapter02",
    "check_serving_metrics": "llmlab.exercises.chapter03",
    "check_gguf_summary": "llmlab.exercises.chapter04",
    "check_ollama_chat_body": "llmlab.exercises.chapter05",
    "check_request_model": "llmlab.exercises.chapter06",
    "check_chat_reply": "llmlab.exercises.chapter07",
    "check_replicas_needed": "llmlab.exercises.chapter08",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
