"""What the course's HTTP servers do with hostile input, so that it gets a 4xx and not a 500.

A fuzzer (``tests/test_fuzz.py``) found three holes that every server written by hand shares:

* **Bodies of any size.** A 1 MB prompt is parsed whole, echoed back inside a 422, and a server
  that answers before reading all of it closes a socket with unread bytes, which the client sees
  as "connection reset". :class:`BodySizeLimit` answers 413 from the ``Content-Length`` alone,
  after reading (and dropping) what the client still sends so that it can read the answer.
* **JSON that Python reads but no client should send.** ``json.loads`` turns ``1e999`` into
  infinity and accepts ``NaN``; error bodies holding them cannot be written back as JSON (a
  500), and forwarding them breaks the backend. A ``\\udcff`` escape gives a string with a lone
  UTF-16 surrogate, which cannot be encoded as UTF-8 and crashes tokenizers. :func:`read_json`
  refuses the first and replaces the second with U+FFFD, as Go's ``encoding/json`` (and so
  Ollama) does; in Pydantic models, :data:`Text` refuses it with a 422 that names the field.
* **Errors that echo the input.** FastAPI's 422 repeats every bad value, however large or
  unprintable: :func:`validation_errors` keeps what a client needs (where and why).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any

from pydantic import AfterValidator

from llmlab.errors import LLMLabError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: A request body larger than this is refused with 413 (the service's prompts fit in 1536 tokens).
MAX_BODY_BYTES = 1 << 20
#: How much of a refused body is still read, so the client sees the 413 rather than a reset.
DRAIN_LIMIT_BYTES = 64 << 20
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class HostileInputError(LLMLabError, ValueError):
    """A request body that is not JSON a well-behaved client sends; the message says why."""


def find_lone_surrogate(text: str) -> str | None:
    """A sentence naming the first lone UTF-16 surrogate in ``text``, or None if it has none.

    ``json.loads`` joins a valid ``\\ud83d\\ude00`` pair into one character, so any surrogate
    left in a decoded string is half of a pair: not text, and not encodable as UTF-8."""
    found = _LONE_SURROGATE.search(text)
    if found is None:
        return None
    return (
        f"text must be valid Unicode, but character {found.start()} is a lone UTF-16 "
        f"surrogate (\\u{ord(found.group()):04x})"
    )


def _refuse_lone_surrogates(text: str) -> str:
    problem = find_lone_surrogate(text)
    if problem:
        raise ValueError(problem)
    return text


#: A ``str`` field that refuses lone surrogates with a 422 naming the field.
Text = Annotated[str, AfterValidator(_refuse_lone_surrogates)]


def read_json(raw: bytes) -> Any:
    """Parse a request body as strict JSON: finite numbers only, and each lone surrogate turned
    into U+FFFD, as Go's ``encoding/json`` (and so Ollama) does."""
    try:
        value = json.loads(raw, parse_float=_finite_float, parse_constant=_refuse_constant)
    except HostileInputError:
        raise
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise HostileInputError(f"the body is not valid JSON ({error})") from None
    return _replace_lone_surrogates(value)


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise HostileInputError(f"the number {text} is out of range: JSON numbers must be finite")
    return number


def _refuse_constant(name: str) -> float:
    raise HostileInputError(f"{name} is not JSON: numbers must be finite")


def _replace_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_replace_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {
            _replace_lone_surrogates(key): _replace_lone_surrogates(item)
            for key, item in value.items()
        }
    return value


def validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic's errors without the bad input (it may be 1 MB, infinite or not UTF-8)."""
    return [{"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]} for e in errors]


class BodySizeLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets a 413 before the app parses it.

    ``error_body(path, message)`` writes the error in the app's own shape. Paths starting with
    one of ``exempt`` (uploads of model files) are not limited."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        error_body: Callable[[str, str], dict[str, Any]],
        max_bytes: int = MAX_BODY_BYTES,
        exempt: tuple[str, ...] = (),
    ) -> None:
        self.app, self.error_body, self.max_bytes, self.exempt = app, error_body, max_bytes, exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.exempt and scope["path"].startswith(self.exempt)):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None:  # the server checks that exactly this much arrives
            if declared > self.max_bytes:
                await _drain(receive)
                await self._refuse(scope, send, f"{declared:,} bytes")
                return
            await self.app(scope, receive, send)
            return
        # No Content-Length (a chunked upload): read up to the limit here, then replay it.
        messages, received = [], 0
        while True:
            message = await receive()
            messages.append(message)
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                await _drain(receive)
                await self._refuse(scope, send, f"over {self.max_bytes:,} bytes")
                return
            if message["type"] != "http.request" or not message.get("more_body"):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send, size: str) -> None:
        message = (
            f"The request body is {size}; this server accepts at most {self.max_bytes:,} bytes. "
            f"Send a shorter prompt or fewer messages."
        )
        body = json.dumps(self.error_body(scope["path"], message)).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None


async def _drain(receive: Receive) -> None:
    """Read what the client still sends (up to a limit): closing a socket with unread bytes
    makes the kernel reset the connection, and the client would never see the answer."""
    drained = 0
    while drained < DRAIN_LIMIT_BYTES:
        message = await receive()
        drained += len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body"):
            return
