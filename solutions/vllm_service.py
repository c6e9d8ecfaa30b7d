"""Exercise 2: a vLLM API service set up for many concurrent users, and a load test that checks it.

    python -m solutions.vllm_service [--model M] [--port 8000] [--api-key KEY]
                                     [--max-num-seqs 64] [--max-model-len 2048]
                                     [--kv-cache-gib 4] [--load-test]

vLLM batches continuously: at every step it adds waiting requests to the running batch and
drops finished ones, so many users share each pass over the weights. The settings that decide
how that holds up under load:

* ``--max-num-seqs``: the most requests in one batch step. More in flight wait in vLLM's queue
  (their time to first token grows); fewer than your clients leaves throughput unused.
* KV cache space: every running request keeps its attention keys and values in a cache of
  fixed size. When it is full, vLLM pauses (preempts) requests and recomputes them later. On a
  CPU its size is ``VLLM_CPU_KVCACHE_SPACE`` in GiB (``--kv-cache-gib``; vLLM takes 4 when
  unset); on a GPU it is what ``--gpu-memory-utilization`` (a share of the GPU's memory) leaves
  after the weights.
* ``--max-model-len``: the longest prompt plus answer a request may have. It bounds what one
  request can take of the cache; a model's full context (32k, 128k) may not fit at all.
* ``--api-key``: vLLM then answers 401 to any ``/v1`` request without
  ``Authorization: Bearer KEY``. One is made up and printed if you give none.
* the address: 127.0.0.1, so only this machine can connect. The source chapter binds 0.0.0.0
  with no key: anyone on the network could use (and load) the server. To serve others, keep
  a key and put a reverse proxy with TLS in front.

Without ``--load-test`` it serves until Ctrl-C. With it, it starts the server, loads it with
1 to 64 concurrent clients through the course's harness, prints the table and, for each level,
the harness's output throughput next to the one vLLM's own ``/metrics`` counter gives
(``vllm:generation_tokens_total`` read before and after the run, over the run's duration),
writes JSON and a plot under the cache folder, and stops.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from llmlab.bench import plot_sweep, to_markdown, write_json
from llmlab.bench.prometheus import VLLM_GENERATION_TOKENS, Agreement, sweep_against_counter
from llmlab.errors import LLMLabError
from llmlab.servers import Server
from llmlab.servers.vllm import vllm_server
from llmlab.settings import cache_dir
from llmlab.sizing.hardware import detect_hardware

LEVELS = (1, 4, 16, 32, 64)


def report(agreements: Sequence[Agreement], out: str | Path | None = None) -> dict[str, Path]:
    """Print the table and the client/server agreement; write JSON and a plot into ``out``
    (default: ``vllm_service/`` in the cache folder). Returns the paths written."""
    results = [agreement.result for agreement in agreements]
    print(to_markdown(results))
    print("\nOutput throughput: the harness's count (usage) / the server's own counter")
    print(f"({VLLM_GENERATION_TOKENS} after - before, over the run's wall time):\n")
    rows = [agreement.row() for agreement in agreements]
    print("| " + " | ".join(rows[0]) + " |\n|" + "---:|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(str(value) for value in row.values()) + " |")
    for result in results:
        for error in result.errors[:3]:
            print(f"failed at concurrency {result.concurrency}: {error}")
    folder = Path(out) if out else cache_dir() / "vllm_service"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "load_test.json", "plot": folder / "load_test.png"}
    write_json(results, paths["json"], records=True)
    data = json.loads(paths["json"].read_text())
    data["agreement"] = rows
    paths["json"].write_text(json.dumps(data, indent=2) + "\n")
    plot_sweep(results).savefig(paths["plot"], dpi=120)
    for path in paths.values():
        print(f"wrote {path}")
    return paths


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m solutions.vllm_service",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[2:4]),
    )
    parser.add_argument(
        "--model", help="model folder or hub id (default: $LLMLAB_MODEL or SmolLM2)"
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only)",
    )
    parser.add_argument(
        "--port", type=int, help="default: 8000 when serving, a free port for --load-test"
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("VLLM_API_KEY"),
        help="clients send 'Authorization: Bearer KEY' (default: $VLLM_API_KEY, "
        "else a new random key, printed)",
    )
    parser.add_argument(
        "--max-num-seqs",
        type=int,
        default=64,
        help="most requests in one batch step; more wait in a queue (64)",
    )
    parser.add_argument(
        "--max-model-len",
        type=int,
        default=2048,
        help="longest prompt + answer one request may have, in tokens (2048)",
    )
    parser.add_argument(
        "--kv-cache-gib",
        type=int,
        default=4,
        help="CPU: KV cache size in GiB, as VLLM_CPU_KVCACHE_SPACE (4)",
    )
    parser.add_argument(
        "--gpu-memory-utilization",
        type=float,
        default=0.85,
        help="GPU: share of its memory for weights + KV cache (0.85)",
    )
    parser.add_argument(
        "--enforce-eager",
        action="store_true",
        help="skip torch.compile / CUDA graphs: ready in ~35 s instead of ~2 min "
        "on 2 CPU cores, somewhat slower",
    )
    parser.add_argument(
        "--load-test",
        action="store_true",
        help="load it from 1 to 64 concurrent clients, report, and stop",
    )
    parser.add_argument(
        "--levels",
        type=int,
        nargs="+",
        default=list(LEVELS),
        help="concurrency levels of --load-test (1 4 16 32 64)",
    )
    parser.add_argument(
        "--max-tokens", type=int, default=64, help="tokens in every answer of --load-test (64)"
    )
    parser.add_argument("--out", help="folder for --load-test's files (default: cache folder)")
    return parser.parse_args(argv)


def make_server(args: argparse.Namespace) -> Server:
    """vLLM with the command line's settings (the GPU share only where there is a GPU)."""
    on_gpu = detect_hardware().device == "cuda"
    extra = ["--gpu-memory-utilization", str(args.gpu_memory_utilization)] if on_gpu else []
    return vllm_server(
        args.model,
        host=args.host,
        port=args.port or (None if args.load_test else 8000),
        api_key=args.api_key,
        max_num_seqs=args.max_num_seqs,
        max_model_len=args.max_model_len,
        kv_cache_gib=args.kv_cache_gib,
        enforce_eager=args.enforce_eager,
        extra_args=extra,  # a later flag wins over vllm_server's default share
    )


def examples(server: Server) -> str:
    """How a client reaches the server: curl and the openai package."""
    key = server.api_key
    return f"""vLLM serves {server.model} at {server.url("/v1")} (log: {server.log_path})

curl {server.url("/v1/chat/completions")} \\
  -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
  -d '{{"model": "{server.model}", "messages": [{{"role": "user", "content": "Hi!"}}]}}'

from openai import OpenAI
client = OpenAI(base_url="{server.url("/v1")}", api_key="{key}")
answer = client.chat.completions.create(
    model="{server.model}", messages=[{{"role": "user", "content": "Hi!"}}]
)
print(answer.choices[0].message.content)

Press Ctrl-C to stop."""


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.api_key = args.api_key or f"sk-{secrets.token_urlsafe(24)}"
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"Listening on {args.host}: other machines can connect. Keep the key secret.")
    server = make_server(args)
    # `kill` (SIGTERM) stops vLLM too, as Ctrl-C does: vLLM runs in a process group of its own.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.start()
        if args.load_test:
            agreements = asyncio.run(
                sweep_against_counter(
                    server.base_url,
                    server.model,
                    args.levels,
                    api_key=args.api_key,
                    max_tokens=args.max_tokens,
                )
            )
            report(agreements, args.out)
            return 0 if all(a.result.failed == 0 for a in agreements) else 1
        print(examples(server), flush=True)
        server.process.wait()
        print(f"vLLM exited with code {server.process.returncode}; see {server.log_path}")
        return 1
    except KeyboardInterrupt:
        print("\nStopping vLLM...")
        return 0
    except LLMLabError as error:  # a port in use, a model not found, a server that did not start
        print(error, file=sys.stderr)
        return 1
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
