"""The source chapter's FastAPI server, kept as written so its problems can be measured.

Fixed, only so that it runs and can be measured: the ``mrompt`` typo (otherwise ``/chat``
never answers), the missing ``LocalLLM`` import (the model is the course's), ``model_dump()``
for pydantic 1's ``.dict()``, the ``temperature`` that ``/chat`` dropped, and 127.0.0.1 for
``0.0.0.0``. What stays, on purpose:

* ``@app.on_event("startup")`` (deprecated; ``lifespan`` replaces it);
* ``async def`` endpoints that call the blocking ``llm.generate``: the event loop stops for
  the whole generation, so requests are served one at a time and even ``/health`` waits;
* no limits, no API key, no streaming, an empty ``usage``.

Run: ``python -m llmlab.service.naive --port 8001``. Never deploy it.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from llmlab.local.generation import LocalLLM

app = FastAPI(title="LLM API Server (the source chapter's version)")
llm: LocalLLM  # loaded at startup, before the first request


class ChatMessage(BaseModel):
    role: str
    content: str


class ChatRequest(BaseModel):
    messages: list[ChatMessage]
    max_tokens: int = 512
    temperature: float = 0.7
    ignore_eos: bool = False  # not in the source chapter: lets a benchmark force equal work


class GenerationResponse(BaseModel):
    text: str
    usage: dict


@app.on_event("startup")
async def startup() -> None:
    global llm
    llm = LocalLLM()


@app.post("/chat")
async def chat(request: ChatRequest) -> GenerationResponse:
    result = llm.chat(  # blocks the event loop until the whole answer is written
        [m.model_dump() for m in request.messages],
        max_new_tokens=request.max_tokens,
        temperature=request.temperature,
        ignore_eos=request.ignore_eos,
    )
    return GenerationResponse(text=result.text, usage={})


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")  # the source chapter binds 0.0.0.0
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port)
