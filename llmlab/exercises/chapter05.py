"""Chapter 05's exercise: ``chat_body``, the JSON body of Ollama's ``POST /api/chat``, checked
against the request schema of the course's Ollama-compatible server."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

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
    name = function_name(chat_body)
    for case, messages, settings in OLLAMA_CASES:
        arguments = ", ".join(f"{key}={value!r}" for key, value in settings.items())
        where = f"{name}, on {case} ({name}({OLLAMA_MODEL!r}, messages, {arguments}))"
        call = functools.partial(chat_body, **settings)
        got = call_student(call, (OLLAMA_MODEL, copy.deepcopy(messages)), where)
        problem = _chat_body_problem(got, messages, settings.get("stream", False), settings)
        if problem:
            raise ExerciseError(f"{where}: {problem}")
    passed(
        f"{name} builds /api/chat bodies that Ollama reads as asked, on {len(OLLAMA_CASES)} chats"
    )


def _chat_body_problem(
    got: object, messages: list[Message], stream: bool, settings: Mapping[str, Any]
) -> str | None:
    from pydantic import ValidationError

    from llmlab.ollama.schemas import ApiError, ChatBody, _explain, refuse_unsupported

    if isinstance(got, str | bytes):
        return (
            f"it returned {kind_of(got)}, JSON text; return the dict: the client serializes it "
            "(requests.post(url, json=body), httpx.post(url, json=body))."
        )
    if not isinstance(got, Mapping):
        return f"it returned {kind_of(got)}; return the body as a dict."
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
        len(sent) == 1 and len(messages) > 1 and ROLE_LABEL.search(str(sent[0].get("content", "")))
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
    from llmlab.ollama.options import llama_options
    from llmlab.ollama.schemas import ApiError

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
