"""Start llama.cpp's ``llama-server`` on a GGUF file.

The source chapter starts it with ``--host 0.0.0.0`` and no key, a fixed port, and
``--temp 0.7`` (a default for requests that set none). Here: 127.0.0.1, a free port, an optional
API key, and ``--parallel`` slots. The key goes in ``LLAMA_API_KEY``, which llama-server reads
like ``--api-key``: a key on the command line is shown by ``ps`` to every user of the machine.
Each slot serves one request at a time and the server batches all busy slots into each step
(continuous batching); the context (``-c``) is shared, so every slot gets
``ctx_size / parallel`` tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from llmlab.errors import ModelNotFoundError
from llmlab.llamacpp.build import find_tools
from llmlab.llamacpp.cpu import llama_server_cpu_args
from llmlab.llamacpp.gguf import course_gguf
from llmlab.servers import LOCALHOST, Server


def llama_server(
    gguf: str | Path | None = None,
    *,
    alias: str | None = None,
    host: str = LOCALHOST,
    port: int | None = None,
    api_key: str | None = None,
    parallel: int = 4,
    ctx_per_slot: int = 2048,
    threads: int | None = None,
    gpu_layers: int | str | None = None,
    extra_args: Sequence[str] = (),
    startup_timeout_s: float = 120,
) -> Server:
    """A ``Server`` for llama-server on ``gguf`` (default: the model setting's GGUF file,
    ``course_gguf()``: SmolLM2's shipped Q4_1 file unless ``$LLMLAB_MODEL`` names another).

    ``gpu_layers`` is ``--gpu-layers`` (``-ngl``): how many layers go to the GPU on a CUDA or
    Metal build, counted from the output layer. None leaves llama-server's default, ``auto``: as
    many as its free memory holds (``llmlab.llamacpp.offload`` does the same arithmetic); on a
    CPU build there is no GPU to put them on."""
    path = Path(gguf).expanduser() if gguf else course_gguf()
    if not path.is_file():
        raise ModelNotFoundError(
            f"No GGUF file at {path}. Pass the path of a .gguf file (chapter 04 makes some)."
        )
    if parallel < 1:
        raise ValueError(f"parallel must be at least 1, not {parallel}")
    name = alias or path.stem
    server = find_tools().server
    command = [
        str(server),
        "--model", str(path),
        "--alias", name,
        "--host", "{host}",
        "--port", "{port}",
        "--parallel", str(parallel),
        "--ctx-size", str(ctx_per_slot * parallel),
        "--metrics",
        *llama_server_cpu_args(server),  # e.g. --no-repack where AMX kernels crash
    ]  # fmt: skip
    if threads:
        command += ["--threads", str(threads)]
    if gpu_layers is not None:
        command += ["--gpu-layers", str(gpu_layers)]
    command += list(extra_args)
    return Server(
        command,
        name="llama-server",
        model=name,
        host=host,
        port=port,
        api_key=api_key,
        # llama-server reads --api-key from LLAMA_API_KEY: the key stays out of `ps`.
        env={"LLAMA_API_KEY": api_key} if api_key else {},
        startup_timeout_s=startup_timeout_s,
    )
