"""Hostile input, found by a fuzzer rather than by hand (``llmlab.http.fuzzing``), on the three HTTP
servers the course writes, each a real process: the model service, the service as a gateway in
front of llama-server, and the Ollama-compatible server.

Every answer must have a status below 500 and, for a 4xx, a JSON error a client can act on; no
connection may drop. Afterwards each server still answers a normal request, and nothing is left
in flight. The run is seeded and bounded (the figures are in pytest's header); a longer one:

    LLMLAB_FUZZ_EXAMPLES=300 bin/test tests/test_fuzz.py
"""

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import ollama
import pytest

from llmlab.http.fuzzing import MAX_ANSWER_TOKENS, fuzz_server
from llmlab.models import default_gguf
from llmlab.ollama import ollama_server
from llmlab.servers import Server
from llmlab.servers.llamacpp import llama_server
from llmlab.servers.service import service_server
from tests.conftest import FUZZ_EXAMPLES, FUZZ_SEED, llama_servers

pytestmark = pytest.mark.server

API_KEY = "sk-fuzz"
#: Operations that create, copy or delete models: the fuzzer must not make "fuzz" over.
STORE_CHANGES = ("/api/create", "/api/copy", "/api/delete")


@pytest.fixture(scope="module")
def service() -> Iterator[Server]:
    with service_server(api_key=API_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def backend() -> Iterator[Server]:
    with llama_server(parallel=2) as backend:
        yield backend


@pytest.fixture(scope="module")
def gateway(backend: Server) -> Iterator[Server]:
    args = ["--backend", backend.url("/v1"), "--backend-model", backend.model]
    with service_server(*args, api_key=API_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def ollama_compatible(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    store = tmp_path_factory.mktemp("fuzz-store")
    with ollama_server(store_dir=store, threads=1, keep_alive_s=300) as server:
        client = ollama.Client(host=server.base_url, timeout=120)
        client.create(model="fuzz", from_=str(default_gguf()),
                      parameters={"num_predict": MAX_ANSWER_TOKENS})  # fmt: skip
        yield server


def fuzz(server: Server, **options: Any) -> None:
    report = fuzz_server(server.base_url, headers=server.headers, examples=FUZZ_EXAMPLES,
                         seed_value=FUZZ_SEED, **options)  # fmt: skip
    print(f"{server.name}: {report.summary()}, statuses {dict(report.statuses)}")
    assert report.findings == []


def wait_until_idle(check: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what} still busy {timeout_s:.0f} s after the run"
        time.sleep(0.5)


def nothing_running(server: Server) -> bool:
    metrics = httpx.get(server.url("/metrics")).text
    return "llmlab_requests_running 0.0" in metrics and "llmlab_queue_depth 0.0" in metrics


def slots_idle(url: str) -> bool:
    slots = httpx.get(f"{url}/slots").json()
    return not any(slot["is_processing"] for slot in slots)


def test_the_service_survives_the_fuzzer(service: Server):
    fuzz(service)
    wait_until_idle(lambda: nothing_running(service), "the service")
    answer = httpx.post(service.url("/generate"), headers=service.headers, timeout=60,
                        json={"prompt": "Hello", "max_tokens": 2})  # fmt: skip
    assert answer.json()["usage"]["completion_tokens"] == 2
    assert httpx.get(service.url("/health")).json()["status"] == "ready"


def test_the_gateway_survives_the_fuzzer(gateway: Server, backend: Server):
    fuzz(gateway)
    wait_until_idle(lambda: nothing_running(gateway), "the gateway")
    wait_until_idle(lambda: slots_idle(backend.base_url), "its llama-server")
    answer = httpx.post(gateway.url("/generate"), headers=gateway.headers, timeout=60,
                        json={"prompt": "Hello", "max_tokens": 2})  # fmt: skip
    assert answer.json()["usage"]["completion_tokens"] == 2


def test_the_ollama_compatible_server_survives_the_fuzzer(ollama_compatible: Server):
    # Uploads of model files are tested on their own (test_ollama_server.py).
    fuzz(ollama_compatible, model="fuzz", skip=("/api/blobs",), keep_models=STORE_CHANGES)
    for url in llama_servers(ollama_compatible).values():
        wait_until_idle(lambda url=url: slots_idle(url), f"llama-server {url}")
    client = ollama.Client(host=ollama_compatible.base_url, timeout=120)
    answer = client.generate(model="fuzz", prompt="Hello", options={"num_predict": 2})
    assert answer.done and answer.eval_count == 2
    assert "fuzz:latest" in [model.model for model in client.list().models]


# --- what the fuzzer (and the hostile client before it) found, kept as regression tests -------

CHAT = [{"role": "user", "content": "Hi"}]
MEGABYTE = "word " * 200_000  # what the hostile client sent: 200,000 words


def post_raw(server: Server, path: str, raw: Any, **headers: str | bytes) -> httpx.Response:
    """``raw`` as the body, byte for byte (``json=`` would refuse to write what we test)."""
    content = raw.encode() if isinstance(raw, str) else raw
    headers = {"Content-Type": "application/json", **server.headers, **headers}
    return httpx.post(server.url(path), content=content, headers=headers, timeout=120)


@pytest.mark.parametrize(
    ("raw", "status", "detail"),
    [
        ('{"messages": [{"role": "user", "content": "Hi"}], "temperature": 1e999}', 422,
         [{"type": "finite_number", "loc": ["body", "temperature"],
           "msg": "Input should be a finite number"}]),
        ('{"messages": [{"role": "user", "content": "Hi"}], "top_p": NaN}', 422,
         [{"type": "finite_number", "loc": ["body", "top_p"],
           "msg": "Input should be a finite number"}]),
        ('{"messages": [{"role": "user", "content": "Hi \\udcff\\u0000"}]}', 422,
         [{"type": "string_unicode", "loc": ["body", "messages", 0, "content"],
           "msg": "Input should be a valid string, unable to parse raw data as a unicode string"}]),
        ('{"messages": [{"role": "assistant", "content": ""}]}', 422,
         "The chat cannot be formatted: the last message is the assistant's; end with a user "
         "message."),
        (json.dumps({"messages": [{"role": "user", "content": MEGABYTE}]}), 422,
         [{"type": "string_too_long", "loc": ["body", "messages", 0, "content"],
           "msg": "String should have at most 32000 characters"}]),
    ],
    ids=["infinite number", "NaN", "lone surrogate and NUL", "assistant last", "1 MB of words"],
)  # fmt: skip
def test_the_service_names_what_is_wrong_without_echoing_it(service: Server, raw, status, detail):
    response = post_raw(service, "/chat", raw)
    assert (response.status_code, response.json()) == (status, {"detail": detail})


def test_nul_characters_are_text_like_any_other(service: Server):
    body = {"messages": [{"role": "user", "content": "a\x00b"}], "max_tokens": 2}
    response = httpx.post(service.url("/chat"), json=body, headers=service.headers, timeout=60)
    assert response.json()["usage"]["completion_tokens"] == 2


@pytest.mark.parametrize("chunked", [False, True], ids=["Content-Length", "chunked"])
def test_a_body_over_the_limit_is_a_413_and_the_service_goes_on(service: Server, chunked: bool):
    raw = json.dumps({"messages": [{"role": "user", "content": "word " * 400_000}]}).encode()
    body = iter([raw[i : i + 65536] for i in range(0, len(raw), 65536)]) if chunked else raw
    response = post_raw(service, "/chat", body)
    size = "over 1,048,576 bytes" if chunked else f"{len(raw):,} bytes"
    assert (response.status_code, response.json()) == (413, {"detail": (
        f"The request body is {size}; this server accepts at most 1,048,576 bytes. "
        "Send a shorter prompt or fewer messages."
    )})  # fmt: skip
    assert post_raw(service, "/chat", json.dumps({"messages": CHAT, "max_tokens": 1})).is_success


def test_a_temperature_near_zero_decodes_greedily(service: Server):
    """Found by the fuzzer: logits divided by 1.2e-38 overflow to inf and sampling fails."""
    body = {"prompt": "Hello", "max_tokens": 2, "temperature": 1.175494351e-38}
    response = httpx.post(service.url("/generate"), json=body, headers=service.headers)
    assert response.json()["usage"]["completion_tokens"] == 2


def test_a_slow_upload_does_not_hold_up_other_clients(service: Server):
    """The limit reads a chunked body on the event loop, a piece at a time, never blocking."""
    health_answered = threading.Event()

    def slow_body() -> Iterator[bytes]:
        yield b'{"messages": [{"role": "user", "content": "Hi"}], '
        health_answered.wait(60)  # the rest comes only once another client was served
        yield b'"max_tokens": 1}'

    with ThreadPoolExecutor(1) as pool:
        upload = pool.submit(post_raw, service, "/chat", slow_body())
        assert httpx.get(service.url("/health"), timeout=30).json()["status"] == "ready"
        assert not upload.done()
        health_answered.set()
        assert upload.result().json()["usage"]["completion_tokens"] == 1


def test_a_key_that_is_not_ascii_is_wrong_not_an_error(service: Server):
    response = post_raw(service, "/chat", json.dumps({"messages": CHAT}),
                        Authorization="Bearer sk-\xe9".encode())  # fmt: skip
    assert (response.status_code, response.json()) == (403, {"detail": "Wrong API key."})


def test_the_gateway_refuses_the_same_way(gateway: Server):
    response = post_raw(gateway, "/v1/chat/completions",
                        '{"model": "m", "messages": [], "temperature": 1e999}')  # fmt: skip
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [
        ["body", "temperature"], ["body", "messages"]
    ]  # fmt: skip


def openai_error(message: str, status: int = 400) -> dict[str, Any]:
    kind = "not_found_error" if status == 404 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"model": "fuzz", "messages": [{"role": "user", "content": "Hi"}], "temperature": 1e999}',
         "the number 1e999 is out of range: JSON numbers must be finite"),
        ('{"model": "fuzz", "messages": [{"role": "user", "content": "Hi"}], "top_p": NaN}',
         "NaN is not JSON: numbers must be finite"),
        ('{"model": "fuzz", "messages": [{"role": "user", "content": null}]}',
         "invalid message content type: <nil>"),
        ('{"model": "fuzz", "messages": []}', "[] is too short - 'messages'"),
        ('{"messages": [{"role": "user", "content": "Hi"}]}', "model is required"),
        ('{"model": "fuzz", "messages": [{"role": "user", "content": "Hi"}], "seed": 1e30}',
         "seed: Input should be a valid integer"),
        (json.dumps({"model": "fuzz", "messages": [{"role": "user", "content": MEGABYTE}]}),
         "request (200031 tokens) exceeds the available context size (2048 tokens), try "
         "increasing it"),
    ],
    ids=["infinite number", "NaN", "null content", "no messages", "no model", "float seed",
         "1 MB of words"],
)  # fmt: skip
def test_the_ollama_compatible_v1_answers_as_ollama_does(ollama_compatible: Server, body, message):
    """Ollama's own messages where it has one (``openai/openai.go``, ``server/routes.go``);
    for numbers out of range Go writes ``json: cannot unmarshal number 1e999 into Go struct
    field ...``, which names Go's types, so this server says it in words."""
    response = post_raw(ollama_compatible, "/v1/chat/completions", body)
    assert (response.status_code, response.json()) == (400, openai_error(message))


def test_an_unknown_role_is_refused_where_ollama_passes_it_on(ollama_compatible: Server):
    """Ollama hands any role to its Go template, which skips what it does not know; here the
    GGUF's Jinja template would see it, and may raise (a 500) or format it: refused first."""
    body = '{"model": "fuzz", "messages": [{"role": "wizard", "content": "Hi"}]}'
    response = post_raw(ollama_compatible, "/v1/chat/completions", body)
    message = "messages.0.role: Input should be 'system', 'user', 'assistant' or 'tool'"
    assert (response.status_code, response.json()) == (400, openai_error(message))


def test_surrogates_become_replacement_characters_as_in_go(ollama_compatible: Server):
    """Go's ``encoding/json`` reads a lone ``\\udcff`` as U+FFFD and keeps NUL: so does this."""
    body = '{"model": "fuzz", "messages": [{"role": "user", "content": "Hi \\udcff\\u0000"}]}'
    answer = post_raw(ollama_compatible, "/v1/chat/completions", body)
    assert answer.json()["choices"][0]["finish_reason"] in ("stop", "length")
    raw = '{"model": "fuzz", "prompt": "\\udcff", "raw": true, "stream": false}'
    assert post_raw(ollama_compatible, "/api/generate", raw).json()["done"] is True


def test_a_huge_max_tokens_is_bounded_as_ollama_bounds_it(ollama_compatible: Server):
    """Ollama takes any ``max_tokens`` and stops at 10 contexts; so does this server."""
    body = {"model": "fuzz", "messages": CHAT, "max_tokens": 10**9, "temperature": 0}
    answer = httpx.post(ollama_compatible.url("/v1/chat/completions"), json=body, timeout=120)
    assert answer.json()["usage"]["completion_tokens"] <= 10 * 2048


def test_the_native_api_refuses_infinite_numbers_and_oversized_bodies(ollama_compatible: Server):
    raw = '{"model": "fuzz", "prompt": "Hi", "options": {"temperature": 1e999}}'
    response = post_raw(ollama_compatible, "/api/generate", raw)
    assert (response.status_code, response.json()) == (
        400, {"error": "the number 1e999 is out of range: JSON numbers must be finite"}
    )  # fmt: skip
    huge = json.dumps({"model": "fuzz", "prompt": "word " * 4_000_000})
    response = post_raw(ollama_compatible, "/api/generate", huge)
    assert (response.status_code, response.json()) == (413, {"error": (
        f"The request body is {len(huge):,} bytes; this server accepts at most 16,777,216 bytes. "
        "Send a shorter prompt or fewer messages."
    )})  # fmt: skip
