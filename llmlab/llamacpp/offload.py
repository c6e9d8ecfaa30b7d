"""How many of a model's layers fit on a GPU: the arithmetic behind llama-server's ``-ngl``.

llama.cpp can split a model between a GPU and the CPU by layers: ``--gpu-layers N`` (``-ngl``)
keeps N layers, with their part of the KV cache, in GPU memory and runs the rest on the CPU from
system memory. It counts from the output end: the output layer first, then the transformer
blocks from the last one, so a model of 28 blocks has 29 layers to place. Every token passes
through every layer, so the ones left on the CPU set the pace: a model that almost fits still
runs, at a speed between the two.

llama-server's default, ``auto``, puts as many blocks on the GPU as its free memory holds,
leaving ``--fit-target`` (1 GiB) to spare. ``gpu_layers_that_fit`` does the same sum with the
course's memory model (``llmlab.sizing.memory``), so a student can predict what it will choose
before buying a card, and pass ``-ngl`` by hand to leave room for something else on the GPU.
"""

from __future__ import annotations

import math

from llmlab.sizing.memory import (
    RUNTIME_GIB_PER_DEVICE,
    Architecture,
    GiB,
    bytes_per_param,
    kv_bytes_per_token,
)

#: What llama-server leaves free on each GPU when it fits layers (its ``--fit-target``, in GiB).
FIT_MARGIN_GIB = 1.0


def offloadable_layers(arch: Architecture) -> int:
    """What ``-ngl`` counts: the transformer blocks and the output layer."""
    return arch.num_layers + 1


def layer_gib(arch: Architecture, dtype: str = "q4_k_m", *, context_length: int = 4096) -> float:
    """One layer's share of the weights in ``dtype`` (the output layer taken as one more), and of
    a ``context_length`` KV cache (16-bit, as llama.cpp keeps it)."""
    weights = arch.num_params * bytes_per_param(dtype) / offloadable_layers(arch)
    kv = kv_bytes_per_token(arch) * context_length / arch.num_layers
    return (weights + kv) / GiB


def gpu_layers_that_fit(
    arch: Architecture,
    free_gib: float,
    dtype: str = "q4_k_m",
    *,
    context_length: int = 4096,
    margin_gib: float = FIT_MARGIN_GIB,
) -> int:
    """The ``-ngl`` for a GPU with ``free_gib`` free: whole layers into what is left after the
    margin and the CUDA context (``RUNTIME_GIB_PER_DEVICE``), at most ``offloadable_layers``."""
    room = free_gib - margin_gib - RUNTIME_GIB_PER_DEVICE
    per_layer = layer_gib(arch, dtype, context_length=context_length)
    return max(0, min(offloadable_layers(arch), math.floor(room / per_layer)))
