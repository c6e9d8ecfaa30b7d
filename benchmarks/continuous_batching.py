"""Requests arriving at random moments: the course's service with static batches and with
continuous batching, ``transformers serve --continuous-batching``, and vLLM's CPU build.

Run by hand (not a test: shared machines are noisy), from the repository root:

    .venv/bin/python -m benchmarks.continuous_batching [--rates 2 4 8] [--requests 24]

Chapter 06 runs the same comparison (``llmlab.bench.timeline.compare_arrivals``); this runs it
with more requests, or on other servers' subsets, and saves the time lines as a figure. Every
server gets the same requests at the same Poisson moments (one seed), one server at a time.
"""

from __future__ import annotations

import argparse
import asyncio

import matplotlib

matplotlib.use("Agg")  # a script: figures go to files
import matplotlib.pyplot as plt  # noqa: E402

from llmlab.bench.timeline import batching_servers, compare_arrivals, plot_arrivals  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[2, 4, 8])
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--max-batch-size", type=int, default=64, help="the service's")
    parser.add_argument("--only", nargs="+", help="server names, as the table gives them")
    parser.add_argument("--figure", help="save the time lines at the middle rate to this PNG")
    args = parser.parse_args()
    servers = batching_servers(args.max_batch_size)
    servers = {name: servers[name] for name in args.only or servers}
    table, timelines = asyncio.run(
        compare_arrivals(servers, args.rates, requests=args.requests, tokens=args.max_tokens)
    )
    print(table.round(1).to_string())
    if args.figure:
        rate = sorted(args.rates)[len(args.rates) // 2]
        plot_arrivals(timelines[rate], f"The same arrivals, {rate:g} requests/s")
        plt.savefig(args.figure, dpi=100)  # plot_arrivals' plt.show() draws nothing on Agg
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
