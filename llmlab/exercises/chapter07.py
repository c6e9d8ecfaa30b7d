"""Chapter 07's exercise: ``reply``, the streaming function a Gradio ``ChatInterface`` calls,
checked against a real llama-server.

The checker hands the student's function an ``openai.OpenAI`` client whose HTTP client records
each request it sends and each answer it reads (``httpx`` event hooks: the server is real, only
watched), then reads what reached the server: the conversation in the request, the text
yielded while it streams, whether the answer was over before its first piece was yielded, and,
after the generator is closed as Gradio closes it on Stop, whether the server stopped
generating (its own ``/metrics`` count of predicted tokens and its ``/slots``).
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import openai

from llmlab.bench.prometheus import LLAMACPP_PREDICTED_TOKENS, read_counter
from llmlab.exercises.common import ExerciseError, call_student, function_name, kind_of, passed
from llmlab.llamacpp.client import LlamaCppClient
from llmlab.messages import Message
from llmlab.prompts import SYSTEM_PROMPT
from llmlab.servers import Server

Reply = Callable[..., Iterator[str]]

HISTORY: list[Message] = [
    {"role": "user", "content": "My name is Ada. Remember it."},
    {"role": "assistant", "content": "Nice to meet you, Ada. I will remember your name."},
]
#: A request whose answer is long, for Stop.
ENDLESS = "List the numbers from 1 to 1000, separated by commas."
STOP_MAX_TOKENS = 512
#: How long the server may take to finish or cancel a request after the stream is closed.
SETTLE_TIMEOUT_S = 120


def check_chat_reply(reply: Reply, server: Server) -> None:
    """Check ``reply(client, model, message, history, max_tokens)`` on ``server`` (a running
    llama-server started with ``--metrics``): the conversation it sends, the text it yields,
    and that closing it stops the server's generation."""
    __tracebackhide__ = True
    name = function_name(reply)
    recording = _Recording()
    sent = recording.sent
    with _recording_client(server, recording) as client:
        where = f"{name}, on a first message"
        question = "What is the capital of France?"
        pieces = _run(reply, (client, server.model, question, [], 64), where)
        _check_request(sent, where, history=[], message=question)
        _check_yields(pieces, where)

        where = f"{name}, on a second message after {len(HISTORY)} turns"
        sent.clear()
        _run(reply, (client, server.model, "What is my name?", list(HISTORY), 64), where)
        _check_request(sent, where, history=HISTORY, message="What is my name?")

        where = f"{name}, stopped after 3 pieces of a long answer"
        _check_stop(reply, client, server, recording, where)
    passed(f"{name} sends the conversation, streams the answer so far, and Stop stops the server")


class _Recording:
    """What the checker saw of the student's chat requests: each one's body, and its answer
    (whose ``is_closed`` turns true once the client has read it to its end, or closed it)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.answers: list[Any] = []  # the responses of openai's HTTP client

    def clear(self) -> None:
        self.sent.clear()
        self.answers.clear()

    def request(self, request: Any) -> None:
        if request.url.path.endswith("/chat/completions"):
            self.sent.append(json.loads(request.content))

    def response(self, response: Any) -> None:
        if response.request.url.path.endswith("/chat/completions"):
            self.answers.append(response)


def _recording_client(server: Server, recording: _Recording) -> openai.OpenAI:
    """An ``openai`` client whose HTTP client (the one it is built on, ``DefaultHttpxClient``)
    tells ``recording`` of every chat request it sends and every answer it reads."""
    hooks: dict[str, list[Callable[..., Any]]] = {
        "request": [recording.request],
        "response": [recording.response],
    }
    http = openai.DefaultHttpxClient(event_hooks=hooks)
    return openai.OpenAI(base_url=server.url("/v1"), api_key=server.api_key or "not-needed",
                         http_client=http, timeout=openai.Timeout(120, connect=5),
                         max_retries=0)  # fmt: skip


def _run(reply: Reply, args: tuple[Any, ...], where: str) -> list[str]:
    """Everything ``reply`` yields, to the end."""
    __tracebackhide__ = True
    result = call_student(reply, args, where)
    if not inspect.isgenerator(result):
        raise ExerciseError(
            f"{where}: it returned {kind_of(result)}, not a generator. Gradio streams what a "
            "generator yields: send the request with stream=True and `yield` the answer so far "
            "as each chunk arrives; a returned string shows nothing until the whole answer is "
            "written."
        )
    return list(call_student(lambda: list(result), (), where))


def _check_request(
    sent: list[dict[str, Any]], where: str, *, history: list[Message], message: str
) -> None:
    __tracebackhide__ = True
    if len(sent) != 1:
        raise ExerciseError(
            f"{where}: it sent {len(sent)} chat requests; send exactly one per message."
        )
    body = sent[0]
    if not body.get("stream"):
        raise ExerciseError(
            f"{where}: the request has no stream=True, so the whole answer arrives at once and "
            "the page shows nothing until it is done. Pass stream=True."
        )
    got = [{"role": m.get("role"), "content": m.get("content")} for m in body.get("messages", [])]
    expected = [{"role": "system", "content": SYSTEM_PROMPT}, *history,
                {"role": "user", "content": message}]  # fmt: skip
    if got == expected:
        return
    if got and got[0].get("role") != "system":
        problem = "it does not start with the system prompt ({'role': 'system', 'content': "
        problem += "SYSTEM_PROMPT}): the model then answers without its instructions"
    elif history and got == [expected[0], expected[-1]]:
        problem = (
            "the history is missing: only the system prompt and the new message were sent, so "
            "the model has forgotten the conversation. Put each turn of `history` (its role and "
            "content) between them"
        )
    elif got[-1:] != expected[-1:]:
        problem = "the last message must be the new one, {'role': 'user', 'content': message}"
    else:
        problem = f"expected the messages {expected}"
    raise ExerciseError(f"{where}: the request's messages were {got}; {problem}.")


def _check_yields(pieces: list[str], where: str) -> None:
    __tracebackhide__ = True
    if not pieces:
        raise ExerciseError(f"{where}: it yielded nothing; yield the answer as it streams in.")
    for piece in pieces:
        if not isinstance(piece, str):
            raise ExerciseError(f"{where}: it yielded {kind_of(piece)}; yield the text, a str.")
    for before, after in zip(pieces, pieces[1:], strict=False):
        if not after.startswith(before):
            raise ExerciseError(
                f"{where}: it yielded {pieces[:3]}...: each piece on its own. Gradio replaces "
                "the message with each value yielded, so the page would show only the last "
                "piece. Add each piece to the answer so far and yield that."
            )
    if len(pieces) < 2:
        raise ExerciseError(
            f"{where}: it yielded once ({pieces[0][:60]!r}): the answer arrived whole. Yield "
            "after every chunk that carries text, so the page shows the answer as it is written."
        )


def _check_stop(
    reply: Reply, client: openai.OpenAI, server: Server, recording: _Recording, where: str
) -> None:
    """Close the generator after 3 pieces, as Gradio does on Stop; the server must stop too."""
    __tracebackhide__ = True
    recording.clear()
    before = _predicted_tokens(server)
    generator = call_student(reply, (client, server.model, ENDLESS, [], STOP_MAX_TOKENS), where)
    for taken in range(3):
        try:
            call_student(next, (generator,), where)
        except ExerciseError as error:
            if isinstance(error.__cause__, StopIteration):
                raise ExerciseError(
                    f"{where}: the answer ended after {taken} pieces; a long answer should "
                    "give many. Yield the answer so far after every chunk that carries text."
                ) from None
            raise
        if taken == 0 and any(answer.is_closed for answer in recording.answers):
            # the answer was over before its first piece was yielded
            generator.close()
            raise ExerciseError(f"{where}: {READ_TO_THE_END}")
    generator.close()
    body = recording.sent[0] if recording.sent else {}
    asked = body.get("max_tokens", body.get("max_completion_tokens"))
    if asked != STOP_MAX_TOKENS:
        raise ExerciseError(
            f"{where}: the request asked for max_tokens={asked!r}; pass the function's "
            "max_tokens on to the request."
        )
    _wait_until_idle(server, where)
    generated = _predicted_tokens(server) - before
    if generated >= STOP_MAX_TOKENS / 2:
        raise ExerciseError(
            f"{where}: the server wrote {generated:.0f} tokens although only 3 pieces were "
            f"taken before the generator was closed. {READ_TO_THE_END}"
        )


READ_TO_THE_END = (
    "The answer was read to its end before the first yield (a list of the chunks, or a request "
    "without streaming), or the stream stayed open. Yield inside the loop over the stream, "
    "opened with `with client.chat.completions.create(..., stream=True) as stream:`; closing "
    "the generator then closes the stream, and the server stops."
)


def _predicted_tokens(server: Server) -> float:
    return read_counter(server.base_url, LLAMACPP_PREDICTED_TOKENS, api_key=server.api_key)


def _busy(server: Server) -> bool:
    with LlamaCppClient(server.base_url, api_key=server.api_key) as llama:
        return any(slot["is_processing"] for slot in llama.slots())


def _wait_until_idle(server: Server, where: str) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while _busy(server):
        if time.monotonic() > deadline:
            raise ExerciseError(
                f"{where}: the server was still generating {SETTLE_TIMEOUT_S} s after the "
                "generator was closed: the stream stayed open (use `with ... as stream:`)."
            )
        time.sleep(0.2)
