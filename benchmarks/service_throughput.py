"""The source chapter's FastAPI server against the course's service, 16 clients at once.

Run by hand from the repository root (not a test: shared machines are noisy):

    .venv/bin/python -m benchmarks.service_throughput [--clients 16] [--max-tokens 64]

Both servers run the default model in process. The clients keep --clients requests in flight
(twice that many requests in all), greedy, every answer forced to exactly --max-tokens tokens.
The course's service streams (``/v1/chat/completions``, SSE), so time to first token is when
the first text arrives; the naive server cannot stream, so its first token comes with the
whole answer (its latency is shown as its TTFT).
"""

from __future__ import annotations

import argparse
import asyncio

from llmlab.bench.tables import course_chat, openai_chat_stream, sweep
from llmlab.servers.service import NAIVE, SERVICE, service_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    runs = {
        "source chapter (naive)": (NAIVE, course_chat(args.max_tokens)),
        "course service": (SERVICE, openai_chat_stream("any", args.max_tokens)),
    }
    figures = {}
    for name, (module, send) in runs.items():
        base = "/v1" if module == SERVICE else ""
        with service_server(module=module) as server:
            [level] = asyncio.run(sweep(server.url(base), send, levels=[args.clients]))
        result = level.result
        # The source chapter's server does not stream: its first token comes with its last.
        first_token_ms = result.ttft_ms.p50 if level.streamed else result.e2e_ms.p50
        figures[name] = (result.output_throughput, first_token_ms)
    print(f"{args.clients} clients in flight, {args.max_tokens} tokens each\n")
    print(f"{'server':24s} {'output tok/s':>13s} {'p50 TTFT (ms)':>14s}")
    for name, (throughput, ttft) in figures.items():
        print(f"{name:24s} {throughput:13.1f} {ttft:14.0f}")
    (naive, _), (course, _) = figures.values()
    print(f"\ncourse service / naive: {course / naive:.1f}x output tokens/s")


if __name__ == "__main__":
    main()
