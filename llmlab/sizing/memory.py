"""The course's one memory model: what serving a model takes, in three named parts.

* **weights**: parameters x bytes per parameter of the storage type;
* **KV cache**: 2 (K and V) x layers x KV heads x head size x bytes x tokens x sequences;
* **runtime**: what the process keeps beside them. Two allowances, not measurements:
  ``RUNTIME_GIB_PER_DEVICE`` for each GPU (the CUDA context) or for the CPU process (PyTorch
  and its libraries), and ``ACTIVATION_FRACTION`` of the weights for activations and allocator
  slack, which grow with the model's width. For a 7B model in 16-bit on one GPU they add up to
  about 1.9 GiB, inside the 1-3 GiB per GPU that vLLM's startup log reports for such models
  (``non_torch_memory``, activation peak, CUDA graphs).

Chapter 01's estimate (``hardware.recommend``), chapter 08's planner (``capacity``) and exercise
1's loader (``solutions.load_7b``) all call ``estimate_memory``, so the same model on the same
card gets the same figure in each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GiB = 1024**3

#: Bytes one parameter takes in memory, by storage type. GGUF's Q4_K_M averages about 4.8 bits
#: per weight and Q8_0 8.5 bits (each block of 32 weights carries its own scale).
BYTES_PER_PARAM: dict[str, float] = {
    "float32": 4.0,
    "float16": 2.0,
    "bfloat16": 2.0,
    "q8_0": 8.5 / 8,
    "q4_k_m": 4.8 / 8,
}

#: Memory each device's runtime keeps whatever the model: the CUDA context on a GPU (several
#: hundred MiB), PyTorch and its libraries in a CPU process.
RUNTIME_GIB_PER_DEVICE = 0.5

#: Activations and allocator slack, as a fraction of the weights.
ACTIVATION_FRACTION = 0.1


@dataclass(frozen=True)
class Architecture:
    """The few numbers of a model's config.json that decide its memory."""

    num_params: float
    num_layers: int
    num_kv_heads: int
    head_dim: int

    @classmethod
    def from_config(cls, config: Any, num_params: float) -> Architecture:
        """Read a Transformers config (grouped-query models have fewer KV heads than heads)."""
        heads = config.num_attention_heads
        return cls(
            num_params=num_params,
            num_layers=config.num_hidden_layers,
            num_kv_heads=getattr(config, "num_key_value_heads", None) or heads,
            head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
        )


#: Published config.json figures of models that stand for each row of the source chapter's table.
REFERENCE_MODELS: dict[str, Architecture] = {
    "Qwen2.5-1.5B-Instruct": Architecture(1.54e9, num_layers=28, num_kv_heads=2, head_dim=128),
    "Qwen2.5-3B-Instruct": Architecture(3.09e9, num_layers=36, num_kv_heads=2, head_dim=128),
    "Qwen2.5-7B-Instruct": Architecture(7.62e9, num_layers=28, num_kv_heads=4, head_dim=128),
    "Llama-2-13b-chat": Architecture(13.0e9, num_layers=40, num_kv_heads=40, head_dim=128),
    "Qwen2.5-32B-Instruct": Architecture(32.8e9, num_layers=64, num_kv_heads=8, head_dim=128),
}


@dataclass(frozen=True)
class MemoryEstimate:
    """Memory a model needs: weights, KV cache and runtime, in GiB."""

    weights_gib: float
    kv_cache_gib: float
    runtime_gib: float

    @property
    def total_gib(self) -> float:
        return self.weights_gib + self.kv_cache_gib + self.runtime_gib


def bytes_per_param(dtype: str) -> float:
    """``BYTES_PER_PARAM[dtype]``, or a clear error naming the types there are."""
    if dtype not in BYTES_PER_PARAM:
        raise ValueError(f"Unknown dtype {dtype!r}; choose one of {sorted(BYTES_PER_PARAM)}")
    return BYTES_PER_PARAM[dtype]


def kv_bytes_per_token(arch: Architecture, kv_dtype: str = "float16") -> float:
    """K and V, for every layer and KV head: what each token of context costs in memory."""
    return 2 * arch.num_layers * arch.num_kv_heads * arch.head_dim * bytes_per_param(kv_dtype)


def runtime_gib(weights_gib: float, devices: int = 1) -> float:
    """The runtime's allowance for ``weights_gib`` of weights spread over ``devices``."""
    return RUNTIME_GIB_PER_DEVICE * devices + ACTIVATION_FRACTION * weights_gib


def memory_for(
    weights_gib: float,
    arch: Architecture,
    *,
    context_length: int = 4096,
    sequences: int = 1,
    kv_dtype: str = "float16",
    devices: int = 1,
) -> MemoryEstimate:
    """Weights already sized (quantized layers, a file) + KV cache + runtime."""
    if context_length < 1 or sequences < 1 or devices < 1:
        raise ValueError("context_length, sequences and devices must be at least 1")
    kv = kv_bytes_per_token(arch, kv_dtype) * context_length * sequences / GiB
    return MemoryEstimate(weights_gib, kv, runtime_gib(weights_gib, devices))


def estimate_memory(
    arch: Architecture,
    dtype: str = "bfloat16",
    *,
    context_length: int = 4096,
    batch_size: int = 1,
    kv_dtype: str = "float16",
    devices: int = 1,
) -> MemoryEstimate:
    """Weights in ``dtype`` + the KV cache of ``batch_size`` sequences of ``context_length``
    tokens + the runtime of ``devices`` devices.

    The KV cache is kept in ``kv_dtype`` (16-bit in vLLM, llama.cpp and Transformers by default,
    even when the weights are quantized), which is why long contexts cost memory on small models.
    """
    weights = arch.num_params * bytes_per_param(dtype) / GiB
    return memory_for(
        weights, arch, context_length=context_length, sequences=batch_size,
        kv_dtype=kv_dtype, devices=devices,
    )  # fmt: skip
