"""Fuzz an HTTP server as a hostile client would, from the server's own OpenAPI schema.

Tests written by hand try the inputs their author thought of. A fuzzer tries the rest:
Schemathesis reads ``/openapi.json`` and Hypothesis draws requests for every operation in it,

* bodies that fit the schema (they reach the model),
* bodies that do not (wrong types, missing fields, values out of range, raw bytes),
* fitting bodies with one value, or the whole body, replaced by a hostile one
  (:data:`HOSTILE_JSON`: an infinite number, a lone surrogate, NUL, a 64-bit overflow,
  a megabyte of words, nesting deeper than a parser recurses).

A **finding** is an answer a client cannot act on: a 5xx, a 4xx without an error message, or
a connection that dropped. The run is seeded, so the same seed sends the same requests.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core import NotSet
from schemathesis.core.result import Err
from tqdm.auto import tqdm

#: Values a client could put in any field, written into the body as raw JSON.
HOSTILE_JSON = (
    "1e999",  # infinity to Python's json module
    "-1e999",
    "NaN",
    '"\\udcff"',  # half of a UTF-16 surrogate pair
    '"a\\u0000b"',  # NUL
    '"\\ud83d"',
    "18446744073709551616",  # 2**64: past every integer type a backend has
    "-9223372036854775809",
    json.dumps("word " * 200_000),  # a megabyte of words
    "[" * 5000 + "]" * 5000,  # nesting deeper than Python's parser recurses
    '{"": null}',
    '""',
)
#: Longest answer a drawn request may ask for: the point is the input, not generating.
MAX_ANSWER_TOKENS = 4


@dataclass(frozen=True)
class Finding:
    """One request whose answer a client could not act on."""

    operation: str
    status: int | str  # the HTTP status, or the error that dropped the connection
    request: str
    response: str


@dataclass
class FuzzReport:
    statuses: Counter = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def summary(self) -> dict[str, int]:
        """Requests by outcome, as a row of a table."""
        by_class = Counter(
            f"{status // 100}xx" if isinstance(status, int) else "dropped"
            for status in self.statuses.elements()
        )
        return {
            "requests": self.requests,
            "2xx answered": by_class["2xx"],
            "4xx refused": by_class["4xx"],
            "5xx failed": by_class["5xx"],
            "connection dropped": by_class["dropped"],
            "findings": len(self.findings),
        }


def fuzz_server(
    base_url: str,
    *,
    headers: dict[str, str] | None = None,
    examples: int = 15,
    seed_value: int = 0,
    model: str = "",
    hostile: Sequence[str] = HOSTILE_JSON,
    skip: tuple[str, ...] = (),
    keep_models: tuple[str, ...] = (),
    progress: bool = False,
) -> FuzzReport:
    """Send each operation of the server at ``base_url`` ``examples`` drawn requests per kind.

    ``model`` is put in fitting bodies that name one, so that they reach generation instead of
    stopping at "model not found" (not for the operations in ``keep_models``, which would
    change or delete it). Operations whose path starts with one of ``skip`` are left out."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # an operation the schema does not describe fully
            raise result.err()
        operations.append(result.ok())
    operations = [op for op in operations if not (skip and op.path.startswith(skip))]
    report = FuzzReport()
    at_most = len(operations) * 2 * examples  # fewer where there is less to draw from
    bar = tqdm(total=at_most, desc=f"fuzzing {base_url}", unit="req", disable=not progress)
    with bar, httpx.Client(base_url=base_url, timeout=120) as http:

        def send(case: Any, content: bytes | None) -> None:
            sent = {"Content-Type": case.media_type or "application/json", **(headers or {})}
            sent |= {k: v for k, v in (case.headers or {}).items() if k.isascii()}
            operation = f"{case.method} {case.operation.path}"
            request = (content or b"")[:200].decode(errors="replace")
            try:
                response = http.request(
                    case.method, case.formatted_path, params=case.query or None,
                    headers=sent, content=content,
                )  # fmt: skip
            except httpx.TransportError as error:
                report.statuses[type(error).__name__] += 1
                bar.update()
                report.findings.append(Finding(operation, type(error).__name__, request, ""))
                return
            report.statuses[response.status_code] += 1
            bar.update()
            unusable = response.status_code >= 500 or (
                response.status_code >= 400 and not error_message(response)
            )
            if unusable:
                finding = Finding(operation, response.status_code, request, response.text[:200])
                report.findings.append(finding)

        for operation in operations:
            steered = "" if operation.path in keep_models else model
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _fuzz_operation(operation, mode, send, examples, seed_value, steered, hostile)
        if not bar.disable:
            # The total was an upper bound: end the bar full, at what was sent. reset() is
            # tqdm's way to change the total (a notebook widget's too); it restarts the clock.
            sent, started = bar.n, bar.start_t
            bar.reset(total=sent)
            bar.update(sent)
            bar.start_t = started
            bar.refresh()
    return report


def error_message(response: httpx.Response) -> str:
    """The message of an error body in FastAPI's, Ollama's or OpenAI's shape ("" if none)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    error = (body.get("detail") or body.get("error")) if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or "")
    return json.dumps(error) if error else ""


def _fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    send: Callable[[Any, bytes | None], None],
    examples: int,
    seed_value: int,
    model: str,
    hostile: Sequence[str],
) -> None:
    @settings(max_examples=examples, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @seed(seed_value)
    @given(case=operation.as_strategy(mode), make_hostile=st.booleans(), data=st.data())
    def run(case: Any, make_hostile: bool, data: st.DataObject) -> None:
        body = None if isinstance(case.body, NotSet) else short_answers(case.body)
        if model and mode is GenerationMode.POSITIVE and isinstance(body, dict) and "model" in body:
            body["model"] = model
        if make_hostile and hostile and mode is GenerationMode.POSITIVE:
            send(case, hostile_body(data.draw, body, hostile))
        elif isinstance(body, bytes | None):  # negative mode also sends raw bytes
            send(case, body)
        else:
            send(case, json.dumps(body).encode())

    try:
        run()
    except Unsatisfiable:  # nothing to get wrong: no body and no parameters (GET /health)
        if mode is not GenerationMode.NEGATIVE:
            raise


def hostile_body(draw: Callable, body: Any, hostile: Sequence[str] = HOSTILE_JSON) -> bytes:
    """``body`` as JSON with one value (or the whole body) replaced by a hostile one."""
    marker = "\x1fHOSTILE\x1f"
    path = draw(st.sampled_from(list(_paths(body))))
    text = json.dumps(_replace(body, path, marker))
    return text.replace(json.dumps(marker), draw(st.sampled_from(list(hostile))), 1).encode()


def short_answers(body: Any) -> Any:
    """Cap how much a drawn request may generate, wherever it says so, written as an integer or
    as a float (JSON's ``603.0``, which the servers accept as 603)."""
    if not isinstance(body, dict):
        return body
    body = dict(body)
    if "prompt" in body or "messages" in body:
        body.setdefault("max_tokens", MAX_ANSWER_TOKENS)  # the service's default is 256
    for key in ("max_tokens", "num_predict"):
        value = body.get(key)
        if _is_number(value) and value > MAX_ANSWER_TOKENS:
            body[key] = MAX_ANSWER_TOKENS
    if _is_number(body.get("num_predict")) and body["num_predict"] < 0:
        body["num_predict"] = MAX_ANSWER_TOKENS  # -1 would fill the context
    if isinstance(body.get("options"), dict):
        body["options"] = short_answers(body["options"])
    body.pop("num_ctx", None)  # each context size starts a llama-server of its own
    return body


def _is_number(value: Any) -> bool:
    """An integer or a float, as JSON numbers decode; not a bool (an int to Python)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _paths(body: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(body, dict | list):
        for key, value in body.items() if isinstance(body, dict) else enumerate(body):
            yield from _paths(value, (*path, key))


def _replace(body: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    copy = dict(body) if isinstance(body, dict) else list(body)
    copy[path[0]] = _replace(copy[path[0]], path[1:], value)
    return copy
