"""Exercise 1: load a 7B model with Transformers, but only when it fits.

    python -m solutions.load_7b [MODEL] [--device auto|cpu|cuda] [--prompt TEXT] [--dry-run]

MODEL is a hub id (default ``Qwen/Qwen2.5-7B-Instruct``), a local Transformers folder, a
``.gguf`` file, or the course's offline default ``SmolLM2-135M-Instruct``.

The source chapter loads every model with ``torch_dtype=torch.float16, device_map="auto"`` and
no check. On a CPU float16 is slow; on a GPU that is too small ``"auto"`` quietly spills layers
to RAM and disk; on a machine that is too small the process is killed after a 15 GB download.
So this script sizes the model first, from metadata only (no weights downloaded or loaded):

1. count the parameters: the hub's safetensors metadata for a hub id, the safetensors headers
   for a folder on disk;
2. ``plan_load`` (a pure function, tested with made-up machines) picks dtype, ``device_map``,
   ``max_memory`` and bitsandbytes quantization from the course's memory model
   (``llmlab.sizing.memory``), or refuses and says what would fit;
3. print the plan with the reason for each choice, and only then load, answer ``--prompt``
   through the chat template, and report load time, peak memory and tokens/s.

Exit status: 0 when it ran (or ``--dry-run`` planned), 3 when the model does not fit,
1 for any other course error (the model cannot be sized offline, no such model, no CUDA).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Literal

import psutil
import torch

from llmlab.errors import LLMLabError, ModelNotFoundError
from llmlab.local.profiling import peak_memory
from llmlab.models import resolve_model
from llmlab.sizing.hardware import Device, Hardware, detect_hardware, recommend
from llmlab.sizing.memory import (
    REFERENCE_MODELS,
    RUNTIME_GIB_PER_DEVICE,
    Architecture,
    GiB,
    MemoryEstimate,
    estimate_memory,
    memory_for,
)

DEFAULT_MODEL_ID = "Qwen/Qwen2.5-7B-Instruct"
EXIT_ERROR = 1
EXIT_TOO_LARGE = 3
Quantization = Literal["8-bit", "4-bit"]

#: Bits per quantized weight in bitsandbytes: int8 (LLM.int8), and NF4 with one float32 scale per
#: 64 weights (0.5 bit; double quantization shrinks it, the margin stays). Embeddings and the
#: output layer are not quantized: they stay 16-bit, which is 2 GiB of Qwen2.5-7B.
BNB_BITS: dict[Quantization, float] = {"8-bit": 8.0, "4-bit": 4.5}
#: Context the plan keeps room for (KV cache): the course's default for memory estimates.
CONTEXT_LENGTH = 4096


class CannotSizeModelError(LLMLabError):
    """The model's size cannot be known without downloading it (no hub access, no safetensors)."""


@dataclass(frozen=True)
class ModelSize:
    """What the plan needs to know about a model, read without loading a weight."""

    parameters: int
    #: From config.json: layers and KV heads decide the KV cache. None when the config is odd.
    architecture: Architecture | None = None
    #: Embedding and output-layer parameters, which bitsandbytes keeps in 16-bit.
    unquantized_parameters: int = 0
    source: str = ""


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
    bf16_supported: bool = True,
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
    * CUDA: 16-bit on the GPU when it fits (bfloat16, or float16 on GPUs without bf16); else
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
    dtype = "bfloat16" if bf16_supported else "float16"
    why_dtype = (
        "the GPU computes bfloat16 natively (float16's range without its overflows)"
        if bf16_supported
        else "this GPU has no bfloat16 support; float16 is its fast 16-bit type"
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


# --- sizing a model without its weights -------------------------------------------------------


def count_parameters(model: str) -> int:
    """Parameters of a local folder (safetensors headers) or a hub id (hub metadata)."""
    path = Path(model)
    return count_parameters_on_disk(path) if path.is_dir() else count_parameters_on_hub(model)


def count_parameters_on_disk(folder: Path) -> int:
    """Sum the tensor shapes in the folder's safetensors headers; no tensor is read.

    A tied output layer is stored once, so this equals ``model.num_parameters()``. (Packed
    GPTQ/AWQ checkpoints would be undercounted: their int32 tensors hold several weights each.)
    """
    from safetensors import safe_open

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise CannotSizeModelError(
            f"{folder} has no .safetensors files, so its size is unknown without loading it. "
            "Save it with save_pretrained (safetensors is the default) and try again."
        )
    total = 0
    for file in files:
        with safe_open(file, framework="pt") as header:
            for key in header.keys():  # noqa: SIM118 (a safetensors handle, not a dict)
                total += math.prod(header.get_slice(key).get_shape())
    return total


def count_parameters_on_hub(repo_id: str) -> int:
    """Ask the hub for the parameter count it reads from the repository's safetensors headers."""
    from huggingface_hub import HfApi, get_safetensors_metadata
    from huggingface_hub.errors import (
        GatedRepoError,
        NotASafetensorsRepoError,
        RepositoryNotFoundError,
    )

    try:
        info = HfApi().model_info(repo_id, files_metadata=False, timeout=15)
        if info.safetensors is not None:
            return int(info.safetensors.total)
        return sum(get_safetensors_metadata(repo_id).parameter_count.values())
    except GatedRepoError as error:
        raise ModelNotFoundError(
            f"{repo_id} is gated: accept its license on the hub and log in (hf auth login)."
        ) from error
    except RepositoryNotFoundError as error:
        raise ModelNotFoundError(f"No model {repo_id!r} on the hub (or it is private).") from error
    except NotASafetensorsRepoError as error:
        raise CannotSizeModelError(
            f"{repo_id} has no safetensors weights, so its size is unknown before downloading."
        ) from error
    except Exception as error:  # transport errors differ by huggingface_hub version
        raise CannotSizeModelError(
            f"Cannot size {repo_id} offline: the hub is not reachable "
            f"({type(error).__name__}: {error}), and its size is checked before anything is "
            "downloaded. Point MODEL at a local Transformers folder (for example one written by "
            "save_pretrained, or a hub snapshot copied from a machine with internet), or run "
            "`python -m solutions.load_7b SmolLM2-135M-Instruct` for the course's offline model."
        ) from error


def cached_snapshot(repo_id: str) -> Path | None:
    """A complete copy of ``repo_id`` in the local hub cache, if an earlier download left one."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(repo_id, "config.json")
    if not isinstance(config, str):
        return None
    folder = Path(config).parent
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = set(json.loads(index.read_text())["weight_map"].values())
        return folder if all((folder / shard).is_file() for shard in shards) else None
    return folder if (folder / "model.safetensors").is_file() else None


def size_model(model: str) -> ModelSize:
    """Parameters and layout of ``model`` (a folder or hub id), from metadata and config only."""
    parameters = count_parameters(model)
    source = "safetensors headers on disk" if Path(model).is_dir() else "hub metadata"
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model).get_text_config()
    except (OSError, ValueError) as error:  # unreachable, or a model type this version lacks
        raise CannotSizeModelError(f"Cannot read the config of {model}: {error}") from error
    try:
        architecture = Architecture.from_config(config, parameters)
        embeddings = config.vocab_size * config.hidden_size
        tied = getattr(config, "tie_word_embeddings", False)
        return ModelSize(parameters, architecture, embeddings * (1 if tied else 2), source)
    except (AttributeError, TypeError):  # a config without the usual fields: skip the KV cache
        return ModelSize(parameters, source=source)


# --- the script -------------------------------------------------------------------------------


def machine(device: str) -> tuple[Hardware, float]:
    """The hardware to plan for under ``--device``, and the RAM a GPU could offload to."""
    detected = detect_hardware()
    ram = psutil.virtual_memory()
    if device == "cuda" and detected.device != "cuda":
        raise LLMLabError(
            "--device cuda: PyTorch sees no CUDA GPU here. Use --device cpu, or install a CUDA "
            "build of torch on a machine with an NVIDIA GPU."
        )
    if device == "cpu" and detected.device != "cpu":
        cpus = os.cpu_count() or 1
        return Hardware("cpu", "CPU", ram.total / GiB, ram.available / GiB, cpus), 0.0
    return detected, ram.available / GiB


def bitsandbytes_importable() -> bool:
    """Whether bitsandbytes imports (installed and built for this machine's CUDA)."""
    try:
        importlib.import_module("bitsandbytes")
    except Exception:  # a broken CUDA build raises more than ImportError
        return False
    return True


@dataclass
class RunReport:
    answer: str
    load_s: float
    generate_s: float
    new_tokens: int
    peak_rss_bytes: int
    gpu_peak_bytes: int | None = None

    def __str__(self) -> str:
        gpu = f"; GPU peak {self.gpu_peak_bytes / GiB:.1f} GiB" if self.gpu_peak_bytes else ""
        return (
            f"answer: {self.answer}\n"
            f"load time: {self.load_s:.1f} s\n"
            f"peak memory: {self.peak_rss_bytes / GiB:.2f} GiB resident (this process){gpu}\n"
            f"speed: {self.new_tokens} tokens in {self.generate_s:.1f} s = "
            f"{self.new_tokens / self.generate_s:.1f} tokens/s (prefill included)"
        )


def load_and_answer(model: str, plan: LoadPlan, prompt: str, max_new_tokens: int) -> RunReport:
    """Load ``model`` as ``plan`` says and answer ``prompt`` greedily through the chat template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmlab.local.generation import SamplingParams, encode_prompt
    from llmlab.prompts import chat

    if plan.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with peak_memory() as memory:
        started = perf_counter()
        tokenizer = AutoTokenizer.from_pretrained(model)
        loaded = AutoModelForCausalLM.from_pretrained(model, **plan.from_pretrained_kwargs())
        loaded.eval()
        load_s = perf_counter() - started
        prompt_ids = encode_prompt(tokenizer, chat(prompt))
        input_ids = torch.tensor([prompt_ids], device=loaded.device)
        pad = tokenizer.pad_token_id
        started = perf_counter()
        with torch.inference_mode():
            output = loaded.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                pad_token_id=pad if pad is not None else tokenizer.eos_token_id,
                **SamplingParams(max_new_tokens=max_new_tokens, temperature=0).generate_kwargs(),
            )
        generate_s = perf_counter() - started
    new_tokens = output[0, len(prompt_ids) :]
    return RunReport(
        answer=tokenizer.decode(new_tokens, skip_special_tokens=True).strip(),
        load_s=load_s,
        generate_s=generate_s,
        new_tokens=len(new_tokens),
        peak_rss_bytes=memory.peak_bytes,
        gpu_peak_bytes=torch.cuda.max_memory_allocated() if plan.device == "cuda" else None,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m solutions.load_7b",
        description="Load a 7B-class model with Transformers, only when it fits this machine.",
    )
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL_ID, help="hub id or folder")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--prompt", default="What is the capital of France?")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--dry-run", action="store_true", help="print the plan, load nothing")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Size, plan, and (unless refused or ``--dry-run``) load and answer. Returns the exit code."""
    args = parse_args(argv)
    try:
        target = resolve_model(args.model)
        hardware, ram = machine(args.device)
        try:
            size = size_model(target)
        except CannotSizeModelError:
            snapshot = cached_snapshot(target) if not Path(target).is_dir() else None
            if snapshot is None:
                raise
            target = str(snapshot)  # downloaded before: size and load the cached copy
            size = size_model(target)
        cuda = hardware.device == "cuda"
        plan = plan_load(
            size.parameters,
            hardware,
            ram_available_gib=ram,
            bf16_supported=torch.cuda.is_bf16_supported() if cuda else True,
            bitsandbytes_available=cuda and bitsandbytes_importable(),
            architecture=size.architecture,
            unquantized_parameters=size.unquantized_parameters,
            name=args.model,
        )
        print(f"{args.model}: {size.parameters / 1e9:.2f} B parameters (from {size.source})")
        print(plan.table())
        if not plan.fits:
            print(f"\nRefusing to load: {plan.refusal}", file=sys.stderr)
            return EXIT_TOO_LARGE
        if args.dry_run:
            return 0
        print(f"\nLoading {target} ...", flush=True)
        print(load_and_answer(target, plan, args.prompt, args.max_new_tokens))
    except LLMLabError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
