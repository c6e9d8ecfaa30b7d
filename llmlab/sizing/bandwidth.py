"""Memory bandwidth: the ceiling on how fast one request can be answered.

To make one token for one request, a model reads every weight once (the input embeddings
excepted: one row of that table per token, unless the output layer is the same table, as in
SmolLM2, and then all of it). Reading is the slow part on a CPU, and on a GPU too at one request,
so the speed of memory sets a ceiling that no engine can pass:

    tokens/s <= read bandwidth / bytes read per token

(unless the weights fit in the CPU's cache, which a small model can on a CPU with a large one:
the bandwidth is measured over a buffer larger than any cache, from main memory).

How close an engine gets tells where its time goes: near the ceiling it is waiting for memory
(the only way up is fewer bytes: quantization), far below it the time goes to per-token work
that is not reading weights (Python, the framework's dispatch, kernel launches, a server's
hops). Serving several requests at once lifts the ceiling itself: one read of the weights then
makes a token for each of them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedModel

#: Large beside any CPU's cache (tens of MiB per core complex, a few hundred at the very most
#: on one with stacked cache), small beside a laptop's memory.
BUFFER_MIB = 512


def measure_read_bandwidth(size_mib: int = BUFFER_MIB, repeats: int = 5) -> float:
    """Bytes per second this machine reads from memory with every core PyTorch uses: the best of
    ``repeats`` sums over a float32 buffer of ``size_mib`` MiB (summing costs next to nothing
    beside reading, so the time is the reading's)."""
    import torch

    if size_mib < 1:
        raise ValueError(f"the buffer must be at least 1 MiB, not {size_mib}")
    buffer = torch.ones(size_mib * 2**20 // 4, dtype=torch.float32)
    buffer.sum()  # the first pass also maps the pages in
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        buffer.sum()
        best = min(best, time.perf_counter() - started)
    return buffer.numel() * buffer.element_size() / best


def bytes_read_per_token(total_bytes: float, embedding_bytes: float, tied: bool) -> float:
    """The weights one token reads: all of them but the input embedding table, which counts
    only when the output layer reuses it (``tied``)."""
    return total_bytes if tied else total_bytes - embedding_bytes


def gguf_bytes_per_token(path: str | Path) -> float:
    """``bytes_read_per_token`` of a GGUF file, from its tensors' stored sizes (a tied model has
    no ``output.weight``: llama.cpp multiplies by ``token_embd.weight`` instead)."""
    from gguf import GGUFReader

    sizes = {tensor.name: int(tensor.n_bytes) for tensor in GGUFReader(path).tensors}
    tied = "output.weight" not in sizes
    return bytes_read_per_token(sum(sizes.values()), sizes.get("token_embd.weight", 0), tied)


def model_bytes_per_token(model: PreTrainedModel) -> float:
    """``bytes_read_per_token`` of a loaded Transformers model, in the dtype it runs in."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())  # a tied table once
    embeddings = model.get_input_embeddings().weight
    output = model.get_output_embeddings()
    tied = output is not None and output.weight.data_ptr() == embeddings.data_ptr()
    return bytes_read_per_token(total, embeddings.numel() * embeddings.element_size(), tied)


def folder_bytes_per_token(folder: str | Path, bytes_per_param: float) -> float:
    """``bytes_read_per_token`` of a Transformers folder loaded at ``bytes_per_param``, from its
    safetensors headers and config.json (what a server such as vLLM will hold)."""
    import json

    from llmlab.sizing.model_size import count_parameters_on_disk

    config = json.loads((Path(folder) / "config.json").read_text())
    embedding = config["vocab_size"] * config["hidden_size"] * bytes_per_param
    total = count_parameters_on_disk(Path(folder)) * bytes_per_param
    return bytes_read_per_token(total, embedding, bool(config.get("tie_word_embeddings")))


def ceiling_tokens_per_s(bytes_per_token: float, bandwidth_bytes_per_s: float) -> float:
    """The most tokens per second one request can get: bandwidth over bytes read per token."""
    return bandwidth_bytes_per_s / bytes_per_token
