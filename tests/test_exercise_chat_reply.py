"""Chapter 07's exercise: the checker of ``reply`` (the streaming function behind a chat page)
drives a real llama-server, accepts the reference answer and names each usual mistake."""

from __future__ import annotations

import pytest

from llmlab.exercises import ExerciseError, check_chat_reply
from llmlab.prompts import SYSTEM_PROMPT
from llmlab.servers.llamacpp import llama_server
from solutions import chapter_exercises as answers

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server():
    with llama_server(parallel=2) as server:
        yield server


def conversation(message, history, *, system=True, keep_history=True):
    messages = [{"role": "system", "content": SYSTEM_PROMPT}] if system else []
    return (
        messages + (list(history) if keep_history else []) + [{"role": "user", "content": message}]
    )


def streaming(pieces=False, read_all_first=False, stream=True, **conversation_options):
    """A student's ``reply``, with one mistake switched on."""

    def reply(client, model, message, history, max_tokens=512):
        messages = conversation(message, history, **conversation_options)
        create = client.chat.completions.create
        if not stream:
            yield (
                create(model=model, messages=messages, max_tokens=max_tokens)
                .choices[0]
                .message.content
            )
            return
        answer = ""
        with create(model=model, messages=messages, max_tokens=max_tokens, stream=True) as chunks:
            for chunk in list(chunks) if read_all_first else chunks:
                if chunk.choices and chunk.choices[0].delta.content:
                    answer += chunk.choices[0].delta.content
                    yield chunk.choices[0].delta.content if pieces else answer

    return reply


def test_reference_reply_passes(server, capsys):
    check_chat_reply(answers.reply, server)
    assert capsys.readouterr().out == (
        "✓ reply sends the conversation, streams the answer so far, and Stop stops the server\n"
    )


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (streaming(pieces=True), r"on a first message: it yielded \['.*'\]\.\.\.: each piece on "
                                 r"its own\. .*yield that"),
        (streaming(stream=False), r"on a first message: the request has no stream=True"),
        (streaming(system=False), r"does not start with the system prompt"),
        (streaming(keep_history=False), r"after 2 turns: .*the history is missing"),
        (streaming(read_all_first=True), r"stopped after 3 pieces of a long answer: .*read to "
                                         r"its end before the first yield"),
        (lambda client, model, message, history, max_tokens=512: "Paris",
         r"it returned a str, not a generator"),
    ],
)  # fmt: skip
def test_reply_mistakes_are_named(server, reply, message):
    with pytest.raises(ExerciseError, match=message):
        check_chat_reply(reply, server)


def test_a_reply_that_ignores_max_tokens_is_told_to_pass_it(server):
    def fixed_length(client, model, message, history, max_tokens=512):
        yield from answers.reply(client, model, message, history, max_tokens=64)

    with pytest.raises(ExerciseError, match=r"asked for max_tokens=64; pass the function's"):
        check_chat_reply(fixed_length, server)
