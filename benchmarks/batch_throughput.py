"""Output tokens/s of batched generation with Transformers, batch sizes 1 to 16.

Run by hand (not a test: shared machines are noisy), from the repository root:

    .venv/bin/python -m benchmarks.batch_throughput [--max-new-tokens 64]

Every batch size generates exactly --max-new-tokens tokens for each of the 16 sample chats
(greedy, end-of-sequence ignored), so each does the same work. Compare the ratio, not the
absolute figures, between machines.
"""

from __future__ import annotations

import argparse

from llmlab import LocalLLM, detect_hardware
from llmlab.local.batching import measure_batch_sizes
from llmlab.prompts import sample_chats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--model", default=None, help="default: $LLMLAB_MODEL or SmolLM2")
    args = parser.parse_args()

    llm = LocalLLM(args.model)
    print(f"{llm}\non {detect_hardware()}\n")
    runs = measure_batch_sizes(llm, sample_chats(16), max_new_tokens=args.max_new_tokens)
    print(f"{'batch':>5} {'seconds':>8} {'tokens':>7} {'tok/s':>7} {'latency s':>10} {'+MiB':>6}")
    for run in runs:
        print(
            f"{run.batch_size:>5} {run.seconds:>8.1f} {run.output_tokens:>7} "
            f"{run.tokens_per_second:>7.1f} {run.mean_latency_s:>10.1f} "
            f"{run.peak_memory_growth_mib:>6.0f}"
        )
    ratio = runs[-1].tokens_per_second / runs[0].tokens_per_second
    print(
        f"\nbatch {runs[-1].batch_size} / batch {runs[0].batch_size}: {ratio:.1f}x output tokens/s"
    )


if __name__ == "__main__":
    main()
