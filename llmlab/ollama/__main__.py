"""Serve the Ollama-compatible API: ``python -m llmlab.ollama [--port 11434] [--store DIR]``.

It binds 127.0.0.1 unless told otherwise: like Ollama's own default, and unlike the source
chapter's servers on 0.0.0.0, nobody else on the network can use the models without a key.
"""

from __future__ import annotations

import argparse

import uvicorn

from llmlab.ollama.server import SHUTDOWN_GRACE_S, create_app


def main() -> None:
    parser = argparse.ArgumentParser(description="llmlab's Ollama-compatible server")
    parser.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1 (this machine)")
    parser.add_argument("--port", type=int, default=11434, help="default: 11434, as Ollama")
    parser.add_argument("--store", default=None, help="model folder (default: the course cache)")
    parser.add_argument(
        "--keep-alive", type=float, default=300, help="seconds a model stays loaded when idle"
    )
    parser.add_argument(
        "--parallel", type=int, default=1, help="requests each model serves at once (slots)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads per model (default: all cores)"
    )
    args = parser.parse_args()
    app = create_app(
        args.store, keep_alive_s=args.keep_alive, parallel=args.parallel, threads=args.threads
    )
    uvicorn.run(app, host=args.host, port=args.port, timeout_graceful_shutdown=SHUTDOWN_GRACE_S)


if __name__ == "__main__":
    main()
