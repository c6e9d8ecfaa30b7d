"""Run the course's model service: ``python -m llmlab.service [--port 8000] [--api-key KEY]``.

One process, one copy of the model: concurrency comes from batching inside the engine, not from
more workers. (``gunicorn -w 4`` would load four copies of the model and split the memory and
cores between them; scale out with replicas behind a router instead, chapter 08.)
"""

from __future__ import annotations

import argparse
import os

import uvicorn

from llmlab.http.guard import MAX_BODY_BYTES
from llmlab.service.app import ServiceSettings, create_app


def main() -> None:
    parser = argparse.ArgumentParser(description="The llmlab model service")
    parser.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1 (this machine)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default=None, help="default: $LLMLAB_MODEL or SmolLM2")
    parser.add_argument("--api-key", default=os.environ.get("LLMLAB_API_KEY"))
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--max-queue", type=int, default=64)
    parser.add_argument(
        "--engine",
        choices=["continuous", "static"],
        default="continuous",
        help="continuous: a request joins the running batch at the next step; static: it waits"
        " for the running batch to finish (chapter 06 compares them)",
    )
    parser.add_argument(
        "--max-body-bytes", type=int, default=MAX_BODY_BYTES, help="larger bodies get a 413"
    )
    parser.add_argument("--backend", help="gateway mode: a vLLM or llama-server URL ending in /v1")
    parser.add_argument("--backend-model", help="the model name the backend serves")
    parser.add_argument("--backend-api-key", default=os.environ.get("LLMLAB_BACKEND_API_KEY"))
    args = parser.parse_args()
    settings = ServiceSettings(
        model=args.model,
        api_key=args.api_key,
        max_batch_size=args.max_batch_size,
        max_queue=args.max_queue,
        engine=args.engine,
        max_body_bytes=args.max_body_bytes,
        backend_url=args.backend,
        backend_model=args.backend_model,
        backend_api_key=args.backend_api_key,
    )
    uvicorn.run(create_app(settings), host=args.host, port=args.port, timeout_graceful_shutdown=60)


if __name__ == "__main__":
    main()
