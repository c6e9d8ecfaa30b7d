"""What this machine has, and which way to run a model on it.

The source chapter gives a fixed table (model size -> GPU memory -> method). Here the choice
comes from arithmetic a student can check: the course's memory model (``llmlab.sizing.memory``:
weights + KV cache + runtime) against the memory this machine has free.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import psutil

from llmlab.sizing.memory import Architecture, GiB, MemoryEstimate, estimate_memory

Device = Literal["cuda", "mps", "cpu"]
#: bfloat16 runs natively from compute capability 8.0 (Ampere) on. Below (Colab's T4 is 7.5) it is
#: emulated, slowly, although ``torch.cuda.is_bf16_supported()`` says True; vLLM refuses it there.
BF16_MIN_CAPABILITY = (8, 0)


@dataclass(frozen=True)
class Hardware:
    """The accelerator the course will use, and the memory it can count on."""

    device: Device
    name: str
    total_memory_gib: float
    available_memory_gib: float
    cpu_count: int
    compute_capability: tuple[int, int] | None = None  # an NVIDIA GPU's (major, minor)

    @property
    def half_dtype(self) -> str:
        """The 16-bit type to compute in here: bfloat16 (float16's range, none of its overflows)
        on a CPU and on a GPU of compute capability 8.0 or more, float16 on older GPUs and MPS."""
        if self.device == "cuda":
            native = (self.compute_capability or (0, 0)) >= BF16_MIN_CAPABILITY
            return "bfloat16" if native else "float16"
        return "bfloat16" if self.device == "cpu" else "float16"

    @property
    def compute_dtype(self) -> str:
        """The dtype the course loads a Transformers model in here (``pick_dtype``, and every
        server that must load the same weights): float32 on a CPU, where float16 matrix kernels
        are slow or missing (measured in chapter 01), the 16-bit ``half_dtype`` on a GPU."""
        return "float32" if self.device == "cpu" else self.half_dtype

    def __str__(self) -> str:
        return (
            f"{self.device} ({self.name}): {self.available_memory_gib:.1f} GiB free of "
            f"{self.total_memory_gib:.1f} GiB, {self.cpu_count} CPU cores"
        )


def detect_hardware() -> Hardware:
    """Detect CUDA, then Apple MPS, then fall back to the CPU and system memory."""
    import torch  # here, not at the top: `recommend` needs no PyTorch

    cpus = os.cpu_count() or 1
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        return Hardware("cuda", torch.cuda.get_device_name(), total / GiB, free / GiB, cpus,
                        compute_capability=torch.cuda.get_device_capability())  # fmt: skip
    memory = psutil.virtual_memory()
    if torch.backends.mps.is_available():
        # Apple silicon shares system memory between CPU and GPU.
        return Hardware("mps", "Apple GPU", memory.total / GiB, memory.available / GiB, cpus)
    return Hardware("cpu", "CPU", memory.total / GiB, memory.available / GiB, cpus)


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
    half = hardware.half_dtype
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
