"""What the course's gateway adds to llama-server: time to first token and throughput, measured
directly and through the gateway in alternating rounds, and where the gateway's time goes.

Run by hand (not a test: shared machines are noisy), from the repository root:

    .venv/bin/python -m benchmarks.gateway_overhead [--rounds 3] [--clients 1 16]

One llama-server (``--parallel 16``) serves both paths. A first pass of the workload warms its
prompt cache, so that every round finds the same cache; then each round measures the direct
path and the gateway path at each client count, in alternating order. The figures are the
medians over the rounds of each round's gateway/direct ratio: a ratio from one round compares
two runs a few seconds apart, so load on the machine that lasts longer than that cancels out.
The gateway's own ``/metrics`` then say where its time to first token went (mean ms per stage).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

import psutil

from llmlab.bench.prometheus import HistogramTotals, read_histogram
from llmlab.bench.tables import LoadLevel, openai_chat_stream, sweep
from llmlab.servers import Server
from llmlab.servers.llamacpp import llama_server
from llmlab.servers.service import service_server

STAGES = "llmlab_first_token_stage_seconds"


def cpu_seconds(server: Server) -> float:
    times = psutil.Process(server.started_process.pid).cpu_times()
    return times.user + times.system


async def measure(url: str, model: str, clients: list[int], max_tokens: int) -> list[LoadLevel]:
    return await sweep(url, openai_chat_stream(model, max_tokens), levels=clients)


def record(ratios: dict[str, list[float]], direct: dict, via: dict, round_: int) -> None:
    """Keep one round's gateway/direct ratios at one client count, and print the round."""
    ratios["ttft"].append(via["TTFT p50 (ms)"] / direct["TTFT p50 (ms)"])
    ratios["throughput"].append(via["output tokens/s"] / direct["output tokens/s"])
    ttft, throughput = "TTFT p50 (ms)", "output tokens/s"
    print(f"round {round_ + 1}, {direct['concurrency']:2d} clients: TTFT p50 "
          f"{direct[ttft]:.0f} -> {via[ttft]:.0f} ms, "
          f"{direct[throughput]:.1f} -> {via[throughput]:.1f} output tokens/s")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()

    with llama_server(parallel=16, ctx_per_slot=1024) as backend:
        gateway_args = ["--backend", backend.url("/v1"), "--backend-model", backend.model]
        with service_server(*gateway_args) as gateway:
            paths = {"direct": backend.url("/v1"), "gateway": gateway.url("/v1")}
            await measure(paths["gateway"], backend.model, args.clients, args.max_tokens)  # warm
            ratios: dict[int, dict[str, list[float]]] = {
                n: {"ttft": [], "throughput": []} for n in args.clients
            }
            stages_before = read_histogram(gateway.base_url, STAGES, "stage")
            cpu_before, tokens = cpu_seconds(gateway), 0
            for round_ in range(args.rounds):
                order = ["direct", "gateway"] if round_ % 2 == 0 else ["gateway", "direct"]
                levels = {
                    path: await measure(paths[path], backend.model, args.clients, args.max_tokens)
                    for path in order
                }
                tokens += sum(level.output_tokens for level in levels["gateway"])
                for direct, via in zip(levels["direct"], levels["gateway"], strict=True):
                    record(ratios[direct.concurrency], direct.row(), via.row(), round_)
            cpu_ms = 1000 * (cpu_seconds(gateway) - cpu_before) / tokens
            stages: HistogramTotals = read_histogram(gateway.base_url, STAGES, "stage")
            stages = stages - stages_before

    print(f"\nmedian over {args.rounds} rounds, gateway / direct:")
    for clients, measured in ratios.items():
        print(f"{clients:3d} clients: TTFT p50 {statistics.median(measured['ttft']) - 1:+.1%}, "
              f"throughput {statistics.median(measured['throughput']):.1%}")  # fmt: skip
    print(f"gateway CPU: {cpu_ms:.2f} ms per relayed token")
    print("\nwhere the gateway's time to first token went (mean ms per request, all rounds):")
    for stage, seconds in stages.means().items():
        print(f"  {stage:9s} {1000 * seconds:8.2f}")


if __name__ == "__main__":
    asyncio.run(main())
