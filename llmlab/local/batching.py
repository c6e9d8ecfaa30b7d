"""Generate for many prompts at once, correctly: left padding, per-batch padding, input order.

A decoder-only model writes after the last position of each row. Pad on the right and the
model's next token follows a run of pad tokens instead of the prompt, so the answers of every
row shorter than the longest one go wrong. Pad on the left, pass the attention mask, and every
row ends where its prompt ends.

Padding to a fixed ``max_length`` (the source chapter's choice) makes every row pay for the
longest possible prompt. Padding each batch to its own longest prompt pays only for what is
there, and sorting prompts by length first puts similar lengths together, so even less is wasted.

The source chapter's ``Dataset``/``DataLoader`` shape is kept: a dataset of tokenized prompts and
a collate function that pads each batch as it is drawn.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from llmlab.local.generation import LocalLLM
from llmlab.local.profiling import peak_memory
from llmlab.local.sampling import GenerationResult, SamplingParams, sampling_params
from llmlab.messages import Message

Prompt = str | Sequence[Message]


class PromptDataset(Dataset):
    """Tokenized prompts, each remembering its position in the input list."""

    def __init__(self, token_ids: Sequence[list[int]]) -> None:
        self.token_ids = list(token_ids)

    def __len__(self) -> int:
        return len(self.token_ids)

    def __getitem__(self, index: int) -> tuple[int, list[int]]:
        return index, self.token_ids[index]


@dataclass(frozen=True)
class LeftPaddingCollator:
    """Pad a batch to its own longest prompt, on the left, with an attention mask."""

    pad_token_id: int
    side: str = "left"

    def __call__(self, items: list[tuple[int, list[int]]]) -> dict[str, torch.Tensor]:
        indices, rows = zip(*items, strict=True)
        width = max(len(row) for row in rows)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            span = slice(width - len(row), width) if self.side == "left" else slice(0, len(row))
            input_ids[i, span] = torch.tensor(row)
            attention_mask[i, span] = 1
        return {
            "index": torch.tensor(indices),
            "input_ids": input_ids,
            "attention_mask": attention_mask,
        }


def batch_order(lengths: Sequence[int], batch_size: int, sort_by_length: bool) -> list[list[int]]:
    """Which prompts go together: in input order, or longest first so lengths match."""
    _check_batch_size(batch_size)
    order = list(range(len(lengths)))
    if sort_by_length:
        order.sort(key=lambda i: lengths[i], reverse=True)
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def padding_waste(lengths: Sequence[int], batch_size: int, *, sort_by_length: bool) -> float:
    """The fraction of prompt positions that are padding, for per-batch padding."""
    batches = batch_order(lengths, batch_size, sort_by_length)
    padded = sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)
    return 1 - sum(lengths) / padded


def generate_batch(
    llm: LocalLLM,
    prompts: Sequence[Prompt],
    params: SamplingParams | None = None,
    *,
    batch_size: int = 8,
    sort_by_length: bool = True,
    padding_side: str = "left",
    progress: bool = True,
    **overrides: object,
) -> list[GenerationResult]:
    """Generate for every prompt (a plain string or a chat), ``batch_size`` at a time.

    Results come back in the order of ``prompts``, each with its own token usage.
    ``padding_side="right"`` exists to show what goes wrong; do not use it.
    """
    if isinstance(prompts, str) or not prompts:
        raise ValueError("prompts must be a non-empty list of strings or chats")
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
    params = sampling_params(params, overrides)
    dataset = PromptDataset([llm.encode(prompt) for prompt in prompts])
    batches = batch_order([len(ids) for ids in dataset.token_ids], batch_size, sort_by_length)
    loader = DataLoader(
        dataset,
        batch_sampler=batches,
        collate_fn=LeftPaddingCollator(llm.pad_token_id, padding_side),
    )
    results: dict[int, GenerationResult] = {}
    for batch in tqdm(loader, desc="Batches", unit="batch", disable=not progress):
        indices = batch.pop("index").tolist()
        output = llm.generate_tokens(batch, params)
        width = batch["input_ids"].shape[1]
        for row, index in enumerate(indices):
            prompt_tokens = len(dataset.token_ids[index])
            results[index] = llm.result_from_tokens(
                prompt_tokens, output[row, width:], params.max_new_tokens
            )
    return [results[index] for index in range(len(prompts))]


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")


@dataclass(frozen=True)
class BatchRun:
    """One pass over a workload at one batch size."""

    batch_size: int
    seconds: float
    output_tokens: int
    mean_latency_s: float
    peak_memory_growth_mib: float

    @property
    def tokens_per_second(self) -> float:
        return self.output_tokens / self.seconds


def measure_batch_sizes(
    llm: LocalLLM,
    prompts: Sequence[Prompt],
    batch_sizes: Sequence[int] = (1, 2, 4, 8, 16),
    *,
    max_new_tokens: int = 64,
) -> list[BatchRun]:
    """Time the same prompts at each batch size, greedy, with exactly ``max_new_tokens`` each.

    All prompts are waiting at the start, as in an offline job: a prompt's latency is the time
    until its batch is done, so later batches wait for earlier ones. Forcing the output length
    (``ignore_eos``) makes every batch size do the same work.
    """
    params = SamplingParams(temperature=0, max_new_tokens=max_new_tokens, ignore_eos=True)
    generate_batch(llm, prompts[:1], params, progress=False)  # warm up
    runs = []
    for batch_size in tqdm(sorted(batch_sizes), desc="Batch sizes", unit="size"):
        latencies, tokens = [], 0
        with peak_memory(device=llm.device) as memory:  # the GPU's, for a model on one
            started = time.perf_counter()
            for batch in batch_order([0] * len(prompts), batch_size, sort_by_length=False):
                results = generate_batch(
                    llm, [prompts[i] for i in batch], params, batch_size=batch_size, progress=False
                )
                tokens += sum(result.usage.completion_tokens for result in results)
                latencies += [time.perf_counter() - started] * len(batch)
            seconds = time.perf_counter() - started
        runs.append(
            BatchRun(
                batch_size,
                seconds,
                tokens,
                mean_latency_s=sum(latencies) / len(latencies),
                peak_memory_growth_mib=memory.growth_bytes / 2**20,
            )
        )
    return runs
