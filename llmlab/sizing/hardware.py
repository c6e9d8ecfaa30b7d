"""What this machine has, how much memory a model needs, and which way to run it.

The source chapter gives a fixed table (model size -> GPU memory -> method). Here the same
figures come from arithmetic a student can check: weights are parameters x bytes per parameter,
the KV cache is 2 (K and V) x layers x KV heads x head size x bytes x tokens, and a runtime needs
some room on top (activations, CUDA context, allocator slack).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

import psutil

Device = Literal["cuda", "mps", "cpu"]
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

#: Room a runtime needs beyond weights and KV cache, as a fraction of the weights.
RUNTIME_OVERHEAD = 0.2


@dataclass(frozen=True)
class Hardware:
    """The accelerator the course will use, and the memory it can count on."""

    device: Device
    name: str
    total_memory_gib: float
    available_memory_gib: float
    cpu_count: int

    def __str__(self) -> str:
        return (
            f"{self.device} ({self.name}): {self.available_memory_gib:.1f} GiB free of "
            f"{self.total_memory_gib:.1f} GiB, {self.cpu_count} CPU cores"
        )


def detect_hardware() -> Hardware:
    """Detect CUDA, then Apple MPS, then fall back to the CPU and system memory."""
    import torch  # here, not at the top: the memory arithmetic of this module needs no PyTorch

    cpus = os.cpu_count() or 1
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        return Hardware("cuda", torch.cuda.get_device_name(), total / GiB, free / GiB, cpus)
    memory = psutil.virtual_memory()
    if torch.backends.mps.is_available():
        # Apple silicon shares system memory between CPU and GPU.
        return Hardware("mps", "Apple GPU", memory.total / GiB, memory.available / GiB, cpus)
    return Hardware("cpu", "CPU", memory.total / GiB, memory.available / GiB, cpus)


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
    """Memory a model needs to serve ``batch_size`` sequences of ``context_length`` tokens."""

    weights_gib: float
    kv_cache_gib: float
    overhead_gib: float

    @property
    def total_gib(self) -> float:
        return self.weights_gib + self.kv_cache_gib + self.overhead_gib


def estimate_memory(
    arch: Architecture,
    dtype: str = "bfloat16",
    *,
    context_length: int = 4096,
    batch_size: int = 1,
    kv_dtype: str = "float16",
) -> MemoryEstimate:
    """Estimate weights + KV cache + runtime overhead.

    The KV cache is kept in ``kv_dtype`` (16-bit in vLLM, llama.cpp and Transformers by default,
    even when the weights are quantized), which is why long contexts cost memory on small models.
    """
    if dtype not in BYTES_PER_PARAM:
        raise ValueError(f"Unknown dtype {dtype!r}; choose one of {sorted(BYTES_PER_PARAM)}")
    if context_length < 1 or batch_size < 1:
        raise ValueError("context_length and batch_size must be at least 1")
    weights = arch.num_params * BYTES_PER_PARAM[dtype]
    kv_per_token = 2 * arch.num_layers * arch.num_kv_heads * arch.head_dim
    kv = kv_per_token * BYTES_PER_PARAM[kv_dtype] * context_length * batch_size
    return MemoryEstimate(weights / GiB, kv / GiB, RUNTIME_OVERHEAD * weights / GiB)


@dataclass(frozen=True)
class Recommendation:
    """How to run a model on given hardware, and why."""

    method: str
    dtype: str
    estimate: MemoryEstimate
    reason: str


def recommend(
    arch: Architecture, hardware: Hardware, *, context_length: int = 4096, users: int = 1
) -> Recommendation:
    """Pick a deployment method and dtype that fit ``hardware``'s free memory.

    Full 16-bit weights where they fit (a GPU serves them fastest: vLLM for many users,
    Transformers for one); 4-bit GGUF on llama.cpp where only a quantized copy fits or there is
    no GPU; several GPUs (vLLM tensor parallelism) when not even that fits.
    """
    free = hardware.available_memory_gib
    half = "bfloat16" if hardware.device != "mps" else "float16"
    full = estimate_memory(arch, half, context_length=context_length, batch_size=users)
    quantized = estimate_memory(arch, "q4_k_m", context_length=context_length, batch_size=users)
    if hardware.device == "cuda" and full.total_gib <= free:
        method = "vLLM" if users > 1 else "Transformers or vLLM"
        return Recommendation(method, half, full, f"{full.total_gib:.1f} GiB fits in {free:.1f}")
    if hardware.device == "cpu" and arch.num_params < 1e9 and full.total_gib <= free:
        return Recommendation(
            "Transformers (learning) or vLLM CPU (serving)",
            "float32" if users == 1 else "bfloat16",
            full,
            "a small model: float32 is the fastest CPU path for one user, bf16 for vLLM",
        )
    if quantized.total_gib <= free:
        return Recommendation(
            "llama.cpp (GGUF Q4_K_M)",
            "q4_k_m",
            quantized,
            f"16-bit needs {full.total_gib:.1f} GiB; 4-bit needs {quantized.total_gib:.1f} "
            f"of {free:.1f} GiB free",
        )
    return Recommendation(
        "vLLM across several GPUs (tensor parallel)",
        half,
        full,
        f"even 4-bit needs {quantized.total_gib:.1f} GiB, more than {free:.1f} GiB free",
    )
