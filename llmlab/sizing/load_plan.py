"""Plan how to call ``from_pretrained`` on this machine, or refuse with what would fit.

``plan_load`` is a pure function of a model's size and a machine (tested on made-up ones): it
picks dtype, ``device_map``, ``max_memory`` and bitsandbytes quantization from the course's
memory model (``llmlab.sizing.memory``), each choice with its reason. Exercise 1's loader
(``solutions.load_7b``) prints the plan and only then loads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from llmlab.sizing.hardware import Device, Hardware, recommend
from llmlab.sizing.memory import (
    REFERENCE_MODELS,
    RUNTIME_GIB_PER_DEVICE,
    Architecture,
    GiB,
    MemoryEstimate,
    estimate_memory,
    memory_for,
)

Quantization = Literal["8-bit", "4-bit"]

#: Bits per quantized weight in bitsandbytes: int8 (LLM.int8), and NF4 with one float32 scale per
#: 64 weights (0.5 bit; double quantization shrinks it, the margin stays). Embeddings and the
#: output layer are not quantized: they stay 16-bit, which is 2 GiB of Qwen2.5-7B.
BNB_BITS: dict[Quantization, float] = {"8-bit": 8.0, "4-bit": 4.5}
#: Context the plan keeps room for (KV cache): the course's default for memory estimates.
CONTEXT_LENGTH = 4096


@dataclass(frozen=True)
class LoadPlan:
    """How to call ``from_pretrained`` on this machine, each choice with its reason.

    ``refusal`` is set (and the other fields show the closest attempt) when nothing fits.
    """

    device: Device
    dtype: str
    device_map: str | None
    estimate: MemoryEstimate
    reasons: dict[str, str]
    max_memory: dict[int | str, str] | None = None
    quantization: Quantization | None = None
    notes: tuple[str, ...] = ()
    refusal: str | None = None

    @property
    def fits(self) -> bool:
        return self.refusal is None

    def table(self) -> str:
        """The plan as rows of setting, choice and why, for a terminal."""
        rows = [
            ("device", self.device),
            ("dtype", self.dtype),
            ("device_map", str(self.device_map)),
            ("max_memory", str(self.max_memory) if self.max_memory else "-"),
            ("quantization", f"{self.quantization} (bitsandbytes)" if self.quantization else "-"),
            ("memory", f"{self.estimate.total_gib:.1f} GiB"),
        ]
        width = max(len(choice) for _, choice in rows)
        lines = [f"{'setting':<13} {'choice':<{width}}  why", "-" * (width + 40)]
        lines += [f"{k:<13} {v:<{width}}  {self.reasons.get(k, '')}".rstrip() for k, v in rows]
        lines += [f"note: {note}" for note in self.notes]
        lines.append("plan: " + ("load" if self.fits else "refuse"))
        return "\n".join(lines)

    def from_pretrained_kwargs(self) -> dict[str, object]:
        """The keywords for ``AutoModelForCausalLM.from_pretrained`` (Transformers 5: ``dtype``)."""
        import torch  # here: planning needs no PyTorch, loading does

        kwargs: dict[str, object] = {
            "dtype": getattr(torch, self.dtype),
            "device_map": self.device_map,
        }
        if self.max_memory:
            kwargs["max_memory"] = self.max_memory
        if self.quantization == "8-bit":
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        elif self.quantization == "4-bit":
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=getattr(torch, self.dtype),
                bnb_4bit_use_double_quant=True,
            )
        return kwargs


def plan_load(
    parameters: int,
    hardware: Hardware,
    *,
    ram_available_gib: float | None = None,
    bitsandbytes_available: bool = False,
    architecture: Architecture | None = None,
    unquantized_parameters: int = 0,
    context_length: int = CONTEXT_LENGTH,
    name: str = "the model",
) -> LoadPlan:
    """Choose how to load a model of ``parameters`` on ``hardware``, or refuse with what would fit.

    Memory is ``llmlab.sizing.memory.estimate_memory``: weights + KV cache + runtime, the
    figure chapter 01 and chapter 08's planner give for the same model.

    * CPU: float32 when even that fits (full precision, the CPU path ``pick_dtype`` uses),
      else bfloat16 (half the memory), else refuse.
    * CUDA: 16-bit on the GPU when it fits (``Hardware.half_dtype``: bfloat16 from compute
      capability 8.0, float16 below); else
      bitsandbytes 8-bit, then 4-bit, when installed (stays on the GPU); else 16-bit split
      between GPU and RAM with ``device_map="auto"`` and ``max_memory`` (exact but slow: offloaded
      layers cross PCIe for every token); else refuse.
    * MPS: float16 in the shared memory, else refuse.

    ``ram_available_gib`` is the RAM a GPU may offload to (ignored on CPU and MPS, where
    ``hardware.available_memory_gib`` already is that memory). Without ``architecture`` the KV
    cache is not counted; the runtime room still is.
    """
    arch = architecture or Architecture(float(parameters), num_layers=0, num_kv_heads=0, head_dim=0)
    free = hardware.available_memory_gib

    def estimate(dtype: str) -> MemoryEstimate:
        return estimate_memory(arch, dtype, context_length=context_length)

    def refuse(dtype: str, needed: MemoryEstimate, where: str, extra: str = "") -> LoadPlan:
        message = (
            f"{name} ({parameters / 1e9:.2f} B parameters) needs {needed.total_gib:.1f} GiB in "
            f"{dtype} ({needed.weights_gib:.1f} GiB of weights, the rest KV cache and runtime "
            f"room), this machine has {where}. {extra}"
            f"{_what_would_fit(arch, dtype, hardware, ram_available_gib, context_length)}"
        )
        reasons = {"device": str(hardware), "memory": f"does not fit: {where}"}
        return LoadPlan(hardware.device, dtype, None, needed, reasons, refusal=message)

    if hardware.device == "cpu":
        full, half = estimate("float32"), estimate("bfloat16")
        hint = _llama_cpp_hint(arch, hardware, context_length)
        if full.total_gib <= free:
            return LoadPlan(
                "cpu",
                "float32",
                "cpu",
                full,
                {
                    "device": f"no GPU: {hardware}",
                    "dtype": "memory is ample: full precision, and float32 is PyTorch's best "
                    "optimized CPU path (the course's pick_dtype)",
                    "memory": f"float32 needs {full.total_gib:.1f} of {free:.1f} GiB free",
                },
                notes=hint,
            )
        if half.total_gib <= free:
            return LoadPlan(
                "cpu",
                "bfloat16",
                "cpu",
                half,
                {
                    "device": f"no GPU: {hardware}",
                    "dtype": f"float32 would need {full.total_gib:.1f} GiB; bfloat16 halves it "
                    "(its speed depends on the CPU's bf16 support)",
                    "memory": f"bfloat16 needs {half.total_gib:.1f} of {free:.1f} GiB free",
                },
                notes=hint,
            )
        return refuse("bfloat16", half, f"{free:.1f} GiB available")

    if hardware.device == "mps":
        half = estimate("float16")
        if half.total_gib <= free:
            return LoadPlan(
                "mps",
                "float16",
                "mps",
                half,
                {
                    "device": f"Apple GPU: {hardware}",
                    "dtype": "float16: the GPU's fast type (CPU and GPU share this memory)",
                    "memory": f"float16 needs {half.total_gib:.1f} of {free:.1f} GiB free",
                },
            )
        return refuse("float16", half, f"{free:.1f} GiB available (shared by CPU and GPU)")

    # CUDA
    dtype = hardware.half_dtype
    why_dtype = (
        "the GPU computes bfloat16 natively (float16's range without its overflows)"
        if dtype == "bfloat16"
        else "below compute capability 8.0 a GPU only emulates bfloat16, slowly; float16 is its "
        "fast 16-bit type"
    )
    full = estimate(dtype)
    ram = ram_available_gib or 0.0
    device_reason = f"{hardware}; RAM for offloading: {ram:.1f} GiB"
    if full.total_gib <= free:
        return LoadPlan(
            "cuda",
            dtype,
            "cuda",
            full,
            {
                "device": device_reason,
                "dtype": why_dtype,
                "device_map": "every layer on the GPU: the weights fit, nothing is offloaded",
                "memory": f"{dtype} needs {full.total_gib:.1f} of {free:.1f} GiB free on the GPU",
            },
        )
    quantized = {
        q: _quantized_estimate(arch, unquantized_parameters, BNB_BITS[q], context_length)
        for q in BNB_BITS
    }
    too_big = f"{dtype} needs {full.total_gib:.1f} GiB, the GPU has {free:.1f} GiB free"
    if bitsandbytes_available:
        for quantization, needed in quantized.items():
            if needed.total_gib <= free:
                return LoadPlan(
                    "cuda",
                    dtype,
                    "cuda",
                    needed,
                    {
                        "device": device_reason,
                        "dtype": f"compute in {dtype}; {why_dtype}",
                        "device_map": "every layer on the GPU, quantized to fit",
                        "quantization": f"{too_big}; {quantization} stays on the GPU, faster "
                        "than offloading 16-bit layers to RAM"
                        + ("" if quantization == "8-bit" else " (8-bit does not fit)"),
                        "memory": f"{quantization} needs {needed.total_gib:.1f} of {free:.1f} GiB",
                    },
                    quantization=quantization,
                )
        missing_bnb: tuple[str, ...] = ()
    else:
        fitting = [q for q, needed in quantized.items() if needed.total_gib <= free]
        missing_bnb = (
            (
                f"bitsandbytes is not installed (pip install bitsandbytes); with it, {fitting[0]} "
                f"would fit on the GPU ({quantized[fitting[0]].total_gib:.1f} GiB), faster than "
                "offloading",
            )
            if fitting
            else ("bitsandbytes is not installed; even its 4-bit would not fit on the GPU",)
        )
    # Offload: keep room on the GPU for the KV cache and the runtime, and in RAM for the process.
    gpu_budget = math.floor(free - full.kv_cache_gib - full.runtime_gib)
    ram_budget = math.floor(ram - RUNTIME_GIB_PER_DEVICE)
    if gpu_budget >= 1 and full.weights_gib <= gpu_budget + ram_budget:
        on_gpu = min(full.weights_gib, gpu_budget)
        return LoadPlan(
            "cuda",
            dtype,
            "auto",
            full,
            {
                "device": device_reason,
                "dtype": why_dtype,
                "device_map": f"{too_big}: ~{on_gpu:.0f} GiB of layers on the GPU, the rest in "
                "RAM, copied to the GPU for every token (exact, but slow)",
                "max_memory": "caps that leave the GPU room for the KV cache and activations, "
                "and RAM room for the process",
                "memory": f"{full.weights_gib:.1f} GiB of weights within GPU {gpu_budget} GiB "
                f"+ RAM {ram_budget} GiB",
            },
            max_memory={0: f"{gpu_budget}GiB", "cpu": f"{ram_budget}GiB"},
            notes=missing_bnb,
        )
    return refuse(
        dtype,
        full,
        f"{free:.1f} GiB free on the GPU and {ram:.1f} GiB of RAM to offload to",
        "".join(f"{note}. " for note in missing_bnb),
    )


def _quantized_estimate(
    arch: Architecture, unquantized: int, bits: float, context_length: int
) -> MemoryEstimate:
    """Memory with bitsandbytes: quantized linear layers, 16-bit embeddings, 16-bit KV cache."""
    kept = min(unquantized, int(arch.num_params))
    weights = ((arch.num_params - kept) * bits / 8 + kept * 2) / GiB
    return memory_for(weights, arch, context_length=context_length)


def _what_would_fit(
    arch: Architecture, half: str, hardware: Hardware, ram: float | None, context_length: int
) -> str:
    """Name the biggest smaller reference model that fits in ``half`` (the 16-bit type this
    machine would use), and this model as a 4-bit GGUF."""
    free = hardware.available_memory_gib
    options = []
    smaller = [
        (estimate_memory(ref, half, context_length=context_length), name)
        for name, ref in REFERENCE_MODELS.items()
        if ref.num_params < arch.num_params
    ]
    fitting = [(needed, name) for needed, name in smaller if needed.total_gib <= free]
    if fitting:
        needed, name = max(fitting, key=lambda pair: pair[0].total_gib)
        options.append(f"{name} in {half} ({needed.total_gib:.1f} GiB)")
    # llama.cpp can split a GGUF's layers between GPU and RAM (-ngl), so both count there.
    gguf_room = free + (ram or 0.0) if hardware.device == "cuda" else free
    q4 = estimate_memory(arch, "q4_k_m", context_length=context_length)
    if q4.total_gib <= gguf_room:
        options.append(
            f"this model as a GGUF Q4_K_M with llama.cpp (chapter 04, {q4.total_gib:.1f} GiB)"
        )
    if not options:
        return (
            f"Even a 4-bit GGUF needs {q4.total_gib:.1f} GiB: close other programs or use a "
            "machine with more memory."
        )
    sentence = " or ".join(options) + " would fit."
    return sentence[0].upper() + sentence[1:]


def _llama_cpp_hint(arch: Architecture, hardware: Hardware, context_length: int) -> tuple[str, ...]:
    """On a CPU the course's hardware helper sends models of a billion parameters or more to
    llama.cpp: say so next to the Transformers plan the exercise asks for."""
    advice = recommend(arch, hardware, context_length=context_length)
    if advice.method.startswith("llama.cpp"):
        return (f"for speed on this CPU, the hardware helper recommends {advice.method}",)
    return ()
