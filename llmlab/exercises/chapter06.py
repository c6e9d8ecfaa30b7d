"""Chapter 06's exercise: a pydantic ``ChatRequest`` that refuses bad input, checked in a FastAPI
endpoint against the service's own request model."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from llmlab.exercises.common import (
    CHATS,
    ExerciseError,
    function_name,
    kind_of,
    passed,
    shorten,
)
from llmlab.messages import Message

if TYPE_CHECKING:
    from fastapi import FastAPI
    from pydantic import BaseModel


_USER_TURN: Message = {"role": "user", "content": "Hi"}
_LIMITS = (
    "MAX_TOKENS_LIMIT and MAX_MESSAGES come from llmlab.service.schemas, the service's own limits"
)
_BOUND_MAX_TOKENS = (
    "Bound it: max_tokens: int = Field(256, ge=1, le=MAX_TOKENS_LIMIT) (" + _LIMITS + ")."
)
_BOUND_TEMPERATURE = (
    "Bound it: temperature: float = Field(0.7, ge=0, le=2). 0 is greedy decoding; a negative "
    "temperature means nothing, and above 2 the answer is noise."
)

#: (case, body, what to change when the student's model answers otherwise than the course's).
#: Whether each body is valid is the course's own model's verdict
#: (``llmlab.service.schemas.ChatRequest``); the valid ones come first.
REQUEST_CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "a valid chat",
        {
            "messages": [
                CHATS["a chat with a system message and a user turn"][0],
                *CHATS["a conversation with an assistant turn"],
            ],
            "max_tokens": 64,
            "temperature": 0.7,
        },
        "Check the field names (messages with role and content, max_tokens, temperature) and "
        'that the three roles a chat holds are allowed: Literal["system", "user", "assistant"].',
    ),
    (
        "temperature 0 (greedy decoding)",
        {"messages": [_USER_TURN], "max_tokens": 64, "temperature": 0},
        "Temperature 0 is valid, it means greedy decoding: bound it with ge=0, not gt=0.",
    ),
    (
        "a body with messages only",
        {"messages": [_USER_TURN]},
        "Give max_tokens and temperature defaults, so that a client may leave them out: "
        "Field(256, ge=1, le=MAX_TOKENS_LIMIT) and Field(0.7, ge=0, le=2), as the service does.",
    ),
    (
        "a typo, max_token instead of max_tokens",
        {"messages": [_USER_TURN], "max_token": 5},
        'Refuse unknown fields: model_config = ConfigDict(extra="forbid"). Otherwise a typo is '
        "dropped without a word and the request runs with the default the client meant to "
        "change (here max_tokens).",
    ),
    (
        "max_tokens 100000",
        {"messages": [_USER_TURN], "max_tokens": 100_000},
        "One such request would hold the model, and the memory of its KV cache, for minutes "
        "while everyone else waits. " + _BOUND_MAX_TOKENS,
    ),
    (
        "max_tokens 0",
        {"messages": [_USER_TURN], "max_tokens": 0},
        "There is nothing to generate: a client bug to report, not to run. " + _BOUND_MAX_TOKENS,
    ),
    (
        "max_tokens -5",
        {"messages": [_USER_TURN], "max_tokens": -5},
        "A negative count is a client bug to report, not to run. " + _BOUND_MAX_TOKENS,
    ),
    ("temperature -1", {"messages": [_USER_TURN], "temperature": -1}, _BOUND_TEMPERATURE),
    ("temperature 5", {"messages": [_USER_TURN], "temperature": 5}, _BOUND_TEMPERATURE),
    (
        "a message with the role 'robot'",
        {"messages": [{"role": "robot", "content": "Hi"}]},
        'Allow only the roles a chat template knows: role: Literal["system", "user", '
        '"assistant"]. An unknown role makes the template fail (a 500) or writes a turn the '
        "model never saw in training.",
    ),
    (
        "no messages",
        {"messages": []},
        "There is nothing to answer: messages: list[ChatMessage] = Field(min_length=1, "
        "max_length=MAX_MESSAGES).",
    ),
    (
        "1000 messages",
        {"messages": [_USER_TURN] * 1000},
        "The prompt, and with it the memory and time one request takes, grows with every "
        "message: messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES) ("
        + _LIMITS
        + ").",
    ),
]


def check_request_model(ChatRequest: type[BaseModel]) -> None:
    """Check a pydantic ``ChatRequest`` (``messages`` of ``role`` and ``content``,
    ``max_tokens``, ``temperature``) in a FastAPI endpoint, driven in process by
    ``TestClient``: it must accept what the course's service accepts (200) and refuse the rest
    with 422, as ``llmlab.service.schemas.ChatRequest`` does. The first case it answers
    otherwise fails, with what was sent and what came back."""
    from fastapi.testclient import TestClient
    from pydantic import BaseModel, ValidationError

    from llmlab.service.schemas import ChatRequest as CourseRequest

    __tracebackhide__ = True
    name = function_name(ChatRequest)
    if isinstance(ChatRequest, BaseModel):
        raise ExerciseError(
            f"you passed an instance of {type(ChatRequest).__name__}; pass the class itself: "
            f"check_request_model({type(ChatRequest).__name__})."
        )
    if not (isinstance(ChatRequest, type) and issubclass(ChatRequest, BaseModel)):
        raise ExerciseError(
            f"{name} is {kind_of(ChatRequest)}, not a pydantic model: write "
            "`class ChatRequest(BaseModel):` with the fields as annotations."
        )
    try:
        app = _echo_app(ChatRequest)
    except Exception as error:
        raise ExerciseError(
            f"{name}: FastAPI cannot take it as a request body: {type(error).__name__}: {error}"
        ) from error
    valid = 0
    with TestClient(app, raise_server_exceptions=False) as client:
        for case, body, fix in REQUEST_CASES:
            try:
                CourseRequest.model_validate(body)
                expected = 200
            except ValidationError:
                expected = 422
            response = client.post("/chat", json=body)
            if response.status_code != expected:
                raise ExerciseError(
                    f"{name}, on {case}: sent {_brief(body)}, "
                    f"{_answer(response)}; expected {expected}. {fix}"
                )
            valid += expected == 200
    passed(
        f"{name} accepts the {valid} valid requests and refuses the "
        f"{len(REQUEST_CASES) - valid} bad ones with 422, like the course's service"
    )


def _echo_app(model: type[BaseModel]) -> FastAPI:
    """One endpoint that takes ``model`` as its body and answers with what it read."""
    from fastapi import FastAPI

    app = FastAPI()

    async def chat(request):  # typed below: the class itself, not a name to resolve
        return request.model_dump(mode="json")

    chat.__annotations__ = {"request": model, "return": dict}
    app.post("/chat")(chat)
    return app


def _brief(body: object) -> str:
    """A JSON body as a message shows it: long lists cut to their first items, and a count."""

    def cut(value: object) -> object:
        if isinstance(value, list) and len(value) > 4:
            return [*map(cut, value[:2]), f"... {len(value) - 2} more"]
        if isinstance(value, list):
            return [cut(item) for item in value]
        if isinstance(value, dict):
            return {key: cut(item) for key, item in value.items()}
        return value

    return shorten(json.dumps(cut(body)), limit=320)


def _answer(response: Any) -> str:  # TestClient's response (httpx's API, its own class)
    """What came back, in words: the model's reading of a 200, the first error of a 422."""
    status = response.status_code
    if status == 200:
        return f"it accepted it (200) and read it as {_brief(response.json())}"
    if status == 422:
        detail = response.json().get("detail") or [{}]
        first = detail[0] if isinstance(detail, list) else {}
        where = ".".join(str(part) for part in first.get("loc", []) if part != "body")
        return f"it refused it (422: {where}: {first.get('msg', detail)})"
    return (
        f"it answered {status} ({shorten(response.text)}), neither 200 nor 422: a request model "
        "should only accept or refuse"
    )
