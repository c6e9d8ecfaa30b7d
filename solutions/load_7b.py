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
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

import psutil
import torch

from llmlab.errors import LLMLabError
from llmlab.local.profiling import peak_memory
from llmlab.models import resolve_model
from llmlab.sizing.hardware import Hardware, detect_hardware
from llmlab.sizing.load_plan import LoadPlan, plan_load
from llmlab.sizing.memory import GiB
from llmlab.sizing.model_size import CannotSizeModelError, cached_snapshot, size_model

DEFAULT_MODEL_ID = "Qwen/Qwen2.5-7B-Instruct"
EXIT_ERROR = 1
EXIT_TOO_LARGE = 3


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

    from llmlab.local.sampling import SamplingParams, encode_prompt
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
