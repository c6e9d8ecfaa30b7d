"""The one reader of streamed answers: SSE events and NDJSON lines as the servers write them."""

import asyncio

import httpx
import pytest

from llmlab.http.streaming import StreamError, andjson, asse_json, ndjson, sse_json

#: vLLM's shape: `data: ` with a space, a usage chunk, then [DONE]; then a llama-server-style
#: event without the space, split over two `data:` lines, and a comment line.
OPENAI_STREAM = (
    b'data: {"choices": [{"text": "Hel"}]}\n\n'
    b": keep-alive comment\n\n"
    b'data:{"choices": [{"text": "lo"}],\ndata: "usage": {"completion_tokens": 2}}\n\n'
    b"data: [DONE]\n\n"
    b'data: {"after": "done"}\n\n'
)


def sse(body: bytes) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


async def collect(chunks):
    return [chunk async for chunk in chunks]


def test_sse_events_are_json_until_done():
    expected = [{"choices": [{"text": "Hel"}]},
                {"choices": [{"text": "lo"}], "usage": {"completion_tokens": 2}}]  # fmt: skip
    assert list(sse_json(sse(OPENAI_STREAM))) == expected
    assert asyncio.run(collect(asse_json(sse(OPENAI_STREAM)))) == expected


def test_a_stream_without_done_ends_with_its_last_event():
    """llama-server's native /completion ends with a `stop` event, not [DONE]."""
    body = b'data: {"content": "Hi"}\n\ndata: {"content": "", "stop": true}\n\n'
    assert [chunk.get("stop") for chunk in sse_json(sse(body))] == [None, True]


@pytest.mark.parametrize(
    "event, said",
    [
        (b'data: {"error": {"message": "out of KV cache", "code": 500}}\n\n', "out of KV cache"),
        (b'data: {"error": "model crashed"}\n\n', "model crashed"),
    ],
)
def test_an_error_event_after_a_200_raises_with_the_servers_words(event, said):
    body = b'data: {"choices": [{"text": "a"}]}\n\n' + event
    chunks = sse_json(sse(body))
    assert next(chunks) == {"choices": [{"text": "a"}]}
    with pytest.raises(StreamError, match=f"error in the stream: {said}"):
        next(chunks)


def test_ndjson_skips_blank_lines_and_raises_on_an_error_line():
    lines = ['{"response": "a", "done": false}', "", b'{"response": "", "done": true}']
    assert [chunk["done"] for chunk in ndjson(lines)] == [False, True]
    with pytest.raises(StreamError, match="error in the stream: model 'x' not found"):
        list(ndjson(['{"response": "a"}', '{"error": "model \'x\' not found"}']))


def test_async_ndjson_reads_a_streamed_response():
    body = b'{"message": {"content": "a"}}\n\n{"done": true}\n'
    response = httpx.Response(200, content=body)
    assert asyncio.run(collect(andjson(response))) == [
        {"message": {"content": "a"}},
        {"done": True},
    ]
