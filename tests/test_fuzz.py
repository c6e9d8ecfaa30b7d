"""Hostile input, found by a fuzzer rather than by hand, on the three HTTP servers the course
writes: the model service, the service as a gateway in front of llama-server, and the
Ollama-compatible server, each a real process.

Schemathesis reads each server's own OpenAPI schema and Hypothesis draws requests from it:
bodies that fit the schema, bodies that do not, and fitting bodies with one value made hostile
(an infinite number, a lone surrogate, NUL, a megabyte of text, a 64-bit overflow). Every
answer must have a status below 500 and, for a 4xx, a JSON error a client can act on; no
connection may drop. Afterwards each server still answers a normal request, and nothing is left
in flight. The run is seeded and bounded (the figures are in pytest's header); a longer one:

    LLMLAB_FUZZ_EXAMPLES=300 bin/test tests/test_fuzz.py
"""

import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import ollama
import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core import NotSet

from llmlab.llamacpp_server import llama_server
from llmlab.models import default_gguf
from llmlab.ollama import ollama_server
from llmlab.servers import Server
from tests.conftest import FUZZ_EXAMPLES, FUZZ_SEED, llama_servers

API_KEY = "sk-fuzz"
#: Operations that create, copy or delete models: the fuzzer must not make "fuzz" over.
STORE_CHANGES = ("/api/create", "/api/copy", "/api/delete")
#: Longest answer a fuzzed request may ask for: the point is the input, not generating.
MAX_ANSWER_TOKENS = 4
#: Values a client could send to any field; each is written into the body as raw JSON.
HOSTILE_JSON = [
    "1e999",  # infinity to Python's json module
    "-1e999",
    "NaN",
    '"\\udcff"',  # half of a UTF-16 surrogate pair
    '"a\\u0000b"',  # NUL
    '"\\ud83d"',
    "18446744073709551616",  # 2**64: past every integer type a backend has
    "-9223372036854775809",
    json.dumps("word " * 200_000),  # a megabyte of text
    "[" * 5000 + "]" * 5000,  # nesting deeper than Python's parser recurses
    '{"": null}',
    '""',
]


def service_command(*args: str) -> list[str]:
    base = [sys.executable, "-m", "llmlab.service", "--host", "{host}", "--port", "{port}"]
    return [*base, "--api-key", API_KEY, *args]


@pytest.fixture(scope="module")
def service() -> Iterator[Server]:
    command = service_command()
    with Server(command, name="service", api_key=API_KEY, startup_timeout_s=180) as server:
        yield server


@pytest.fixture(scope="module")
def backend() -> Iterator[Server]:
    with llama_server(parallel=2) as backend:
        yield backend


@pytest.fixture(scope="module")
def gateway(backend: Server) -> Iterator[Server]:
    command = service_command("--backend", backend.url("/v1"), "--backend-model", backend.model)
    with Server(command, name="gateway", api_key=API_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def ollama_compatible(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    store = tmp_path_factory.mktemp("fuzz-store")
    with ollama_server(store_dir=store, threads=1, keep_alive_s=300) as server:
        client = ollama.Client(host=server.base_url, timeout=120)
        client.create(model="fuzz", from_=str(default_gguf()),
                      parameters={"num_predict": MAX_ANSWER_TOKENS})  # fmt: skip
        yield server


def hostile_body(draw: Callable, body: Any) -> bytes:
    """``body`` as JSON with one value (or the whole body) replaced by a hostile one."""
    marker = "\x1fHOSTILE\x1f"
    paths = list(_leaf_paths(body))
    path = draw(st.sampled_from(paths)) if paths else ()
    value = draw(st.sampled_from(HOSTILE_JSON))
    text = json.dumps(_replace(body, path, marker))
    return text.replace(json.dumps(marker), value, 1).encode()


def _leaf_paths(body: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(body, dict | list):
        for key, value in body.items() if isinstance(body, dict) else enumerate(body):
            yield from _leaf_paths(value, (*path, key))


def _replace(body: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    copy = dict(body) if isinstance(body, dict) else list(body)
    copy[path[0]] = _replace(copy[path[0]], path[1:], value)
    return copy


def short_answers(body: Any) -> Any:
    """Cap how much a drawn request may generate, wherever it says so."""
    if isinstance(body, dict):
        body = dict(body)
        if "prompt" in body or "messages" in body:
            body.setdefault("max_tokens", MAX_ANSWER_TOKENS)  # the service's default is 256
        for key in ("max_tokens", "num_predict"):
            if isinstance(body.get(key), int) and not isinstance(body[key], bool):
                body[key] = max(-1, min(body[key], MAX_ANSWER_TOKENS))
        if isinstance(body.get("num_predict"), int) and body["num_predict"] < 0:
            body["num_predict"] = MAX_ANSWER_TOKENS  # -1 would fill the context
        if isinstance(body.get("options"), dict):
            body["options"] = short_answers(body["options"])
        body.pop("num_ctx", None)  # each context size starts a llama-server of its own
    return body


def error_message(response: httpx.Response) -> str:
    """The message of an error body, in the service's, Ollama's or OpenAI's shape."""
    body = response.json()
    error = body.get("detail") or body.get("error")
    return error.get("message") if isinstance(error, dict) else json.dumps(error)


def fuzz(server: Server, *, model: str = "", skip: tuple[str, ...] = ()) -> Counter:
    """Send every operation of ``server``'s schema the drawn requests; statuses by count.

    Requests that fit the schema name ``model`` (if given), except those that change the store,
    so that they reach generation instead of stopping at "model not found"."""
    schema = schemathesis.openapi.from_url(server.url("/openapi.json"))
    statuses: Counter = Counter()
    with httpx.Client(base_url=server.base_url, timeout=120) as http:

        def send(case: Any, content: bytes | None) -> None:
            headers = {"Content-Type": case.media_type or "application/json", **server.headers}
            headers |= {k: v for k, v in (case.headers or {}).items() if k.isascii()}
            response = http.request(
                case.method, case.formatted_path, params=case.query or None,
                headers=headers, content=content,
            )  # fmt: skip
            statuses[response.status_code] += 1
            where = f"{case.method} {case.formatted_path} with {(content or b'')[:300]!r}"
            assert response.status_code < 500, f"{where}: {response.status_code} {response.text}"
            if response.status_code >= 400:
                assert error_message(response), f"{where}: no error message in {response.text}"

        for result in schema.get_all_operations():
            operation = result.ok()
            if skip and operation.path.startswith(skip):
                continue
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                steered = model if operation.path not in STORE_CHANGES else ""
                fuzz_operation(operation, mode, send, model=steered)
    return statuses


def fuzz_operation(operation: Any, mode: GenerationMode, send: Callable, *, model: str) -> None:
    """Hypothesis draws ``operation``'s requests; positive ones are sometimes made hostile."""

    @settings(max_examples=FUZZ_EXAMPLES, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @seed(FUZZ_SEED)
    @given(case=operation.as_strategy(mode), hostile=st.booleans(), data=st.data())
    def run(case: Any, hostile: bool, data: st.DataObject) -> None:
        body = None if isinstance(case.body, NotSet) else short_answers(case.body)
        if model and mode is GenerationMode.POSITIVE and isinstance(body, dict) and "model" in body:
            body["model"] = model
        if hostile and mode is GenerationMode.POSITIVE:
            send(case, hostile_body(data.draw, body))
        elif isinstance(body, bytes | None):  # negative mode also sends raw bytes
            send(case, body)
        else:
            send(case, json.dumps(body).encode())

    try:
        run()
    except Unsatisfiable:  # nothing to get wrong: no body, no parameters (GET /health)
        assert mode is GenerationMode.NEGATIVE


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
    statuses = fuzz(service)
    print(f"service: {dict(statuses)}")
    wait_until_idle(lambda: nothing_running(service), "the service")
    answer = httpx.post(service.url("/generate"), headers=service.headers, timeout=60,
                        json={"prompt": "Hello", "max_tokens": 2})  # fmt: skip
    assert answer.json()["usage"]["completion_tokens"] == 2
    assert httpx.get(service.url("/health")).json()["status"] == "ready"


def test_the_gateway_survives_the_fuzzer(gateway: Server, backend: Server):
    statuses = fuzz(gateway)
    print(f"gateway: {dict(statuses)}")
    wait_until_idle(lambda: nothing_running(gateway), "the gateway")
    wait_until_idle(lambda: slots_idle(backend.base_url), "its llama-server")
    answer = httpx.post(gateway.url("/generate"), headers=gateway.headers, timeout=60,
                        json={"prompt": "Hello", "max_tokens": 2})  # fmt: skip
    assert answer.json()["usage"]["completion_tokens"] == 2


def test_the_ollama_compatible_server_survives_the_fuzzer(ollama_compatible: Server):
    # uploads of model files are tested on their own (test_ollama_server.py)
    statuses = fuzz(ollama_compatible, model="fuzz", skip=("/api/blobs",))
    print(f"Ollama-compatible: {dict(statuses)}")
    for url in llama_servers(ollama_compatible).values():
        wait_until_idle(lambda url=url: slots_idle(url), f"llama-server {url}")
    client = ollama.Client(host=ollama_compatible.base_url, timeout=120)
    answer = client.generate(model="fuzz", prompt="Hello", options={"num_predict": 2})
    assert answer.done and answer.eval_count == 2
    assert "fuzz:latest" in [model.model for model in client.list().models]
