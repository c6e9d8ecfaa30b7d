"""Benchmark a running server from a shell and print a table.

    python -m llmlab.bench --url http://127.0.0.1:8000/v1 --model NAME --concurrency 1 4 16
    python -m llmlab.bench --url http://127.0.0.1:8000/v1 --model NAME --request-rate 2.0 \\
        --requests 32 --max-tokens 64 --json out.json

``--backend openai`` (default) speaks ``/v1/chat/completions`` (vLLM, llama-server, the course's
service, Ollama's ``/v1``): give the URL ending in ``/v1``. ``llamacpp`` (llama-server's native
``/completion``) and ``ollama`` (``/api/chat``) take the server's root URL.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from llmlab.bench.http_targets import LlamaCppCompletion, OllamaChat, OpenAIChat
from llmlab.bench.records import BenchmarkResult
from llmlab.bench.report import to_markdown, write_csv, write_json
from llmlab.bench.runner import default_workload, run
from llmlab.bench.targets import Target
from llmlab.prompts import sample_chats


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m llmlab.bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--url", required=True, help="base URL (ending in /v1 for openai)")
    parser.add_argument("--model", help="model name the server serves (not for llamacpp)")
    parser.add_argument("--backend", choices=["openai", "llamacpp", "ollama"], default="openai")
    parser.add_argument("--api-key", help="sent as 'Authorization: Bearer KEY'")
    parser.add_argument("--concurrency", type=int, nargs="+", help="requests in flight (1 4 16)")
    parser.add_argument("--request-rate", type=float, help="Poisson arrivals per second")
    parser.add_argument(
        "--requests", type=int, help="per run (default: 2 x concurrency, at least 8; 32 at a rate)"
    )
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens in every answer")
    parser.add_argument("--seed", type=int, default=0, help="seed of the Poisson arrivals")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per request")
    parser.add_argument("--json", help="write the results (and every request) to this file")
    parser.add_argument("--csv", help="write the results to this file")
    args = parser.parse_args(argv)
    if args.backend != "llamacpp" and not args.model:
        parser.error(f"--model is needed for --backend {args.backend}")
    return args


def make_target(args: argparse.Namespace) -> Target:
    common = {"max_tokens": args.max_tokens, "api_key": args.api_key, "timeout_s": args.timeout}
    if args.backend == "llamacpp":
        return LlamaCppCompletion(args.url, **common)
    if args.backend == "ollama":
        return OllamaChat(args.url, args.model, **common)
    return OpenAIChat(args.url, args.model, **common)


async def benchmark(args: argparse.Namespace) -> list[BenchmarkResult]:
    levels = args.concurrency or ([None] if args.request_rate else [1, 4, 16])
    results = []
    target = make_target(args)
    async with target:
        for i, level in enumerate(levels):
            count = args.requests or (32 if level is None else None)
            workload = sample_chats(count) if count else default_workload(level)
            result = await run(
                target,
                workload,
                concurrency=level,
                request_rate=args.request_rate,
                seed=args.seed,
                warmup=i == 0,
            )
            results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = asyncio.run(benchmark(args))
    print(f"\n{args.backend} at {args.url}, greedy, {args.max_tokens} output tokens a request\n")
    print(to_markdown(results))
    for result in results:
        for error in result.errors[:3]:
            print(f"failed ({result.target}, concurrency {result.concurrency}): {error}")
    if args.json:
        print(f"\nwrote {write_json(results, args.json, records=True)}")
    if args.csv:
        print(f"wrote {write_csv(results, args.csv)}")
    return 0 if any(result.completed for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
