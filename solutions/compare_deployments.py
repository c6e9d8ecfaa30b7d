"""Exercise 3: compare the deployment methods on the same workload, one backend at a time.

    python -m solutions.compare_deployments [--out DIR] [--levels 1 4 16] [--max-tokens 64]
                                            [--only NAME ...] [--skip NAME ...]

Every backend answers the same requests: the course's sample chats (``llmlab.prompts``), greedy,
every answer forced to ``--max-tokens`` tokens where the backend can force it (``ignore_eos``;
Ollama cannot, so its answers may be shorter, and the table shows by how much). Each backend is
started, warmed up with one request that is not counted, swept over the concurrency levels with
the course's harness (``llmlab.bench``), and stopped before the next one starts: two model
servers at once would share the same cores and spoil both figures.

The backends, by the name ``--only`` and ``--skip`` take:

* ``transformers``: the model in this process (``LocalLLM``), one request at a time. It batches
  nothing, so it is measured at concurrency 1 only and its other rows say so.
* ``service``: the course's FastAPI service (``python -m llmlab.service``) around the same
  Transformers model, batching continuously (a request joins the running batch at its next step).
* ``vllm``: vLLM's OpenAI server, continuous batching (``--enforce-eager``: ready in ~35 s).
* ``llama-server``: llama.cpp on the 4-bit GGUF, one slot per concurrent request.
* ``ollama``: a real Ollama where ``find_ollama()`` finds one, else the course's
  Ollama-compatible server on llama-server, with Ollama's default of one request at a time
  per model (``OLLAMA_NUM_PARALLEL=1``; ``--ollama-parallel`` changes it).

A backend that cannot start (not installed, no model, a port problem, a start timeout) is
reported with its reason in the results, and the others still run. Results go to ``--out``
(default: ``compare_deployments/`` in the course's cache folder): ``results.md``,
``results.csv``, ``results.json``, ``throughput.png`` and ``ttft.png``.

The load generator runs on the same machine as the servers; on a small CPU it takes some of
their time, so absolute figures are a little low, the same for every backend.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from llmlab.bench import InProcess, OllamaChat, OpenAIChat
from llmlab.bench.compare import (
    MIN_REQUESTS,
    Backend,
    Comparison,
    Running,
    machine_summary,
    run_backends,
)
from llmlab.bench.compare import write_report as write_files
from llmlab.errors import MissingPackageError
from llmlab.llamacpp.gguf import course_gguf
from llmlab.models import local_folder, resolve_model
from llmlab.ollama import find_ollama, ollama_server
from llmlab.servers.llamacpp import llama_server
from llmlab.servers.service import service_server
from llmlab.settings import cache_dir, model_setting, sweep_waves
from llmlab.sizing.bandwidth import (
    folder_bytes_per_token,
    gguf_bytes_per_token,
    measure_read_bandwidth,
    model_bytes_per_token,
)
from llmlab.sizing.hardware import detect_hardware
from llmlab.sizing.memory import bytes_per_param

#: The model a real Ollama is given (made from the same GGUF file the other backends read).
OLLAMA_MODEL = "llmlab-compare"


@dataclass(frozen=True)
class Options:
    """What every backend is run with: the same load, the same answer length, the same model."""

    levels: tuple[int, ...] = (1, 4, 16)
    max_tokens: int = 64
    #: The Transformers model (transformers, service, vLLM): None is $LLMLAB_MODEL or SmolLM2.
    model: str | None = None
    #: The GGUF file (llama-server, Ollama): None is the same model's (``course_gguf``): the
    #: shipped SmolLM2 Q4_1 file, or ``model`` converted and quantized to Q4_K_M once.
    gguf: str | None = None
    #: Requests Ollama serves at once per model (Ollama's own default is 1).
    ollama_parallel: int = 1
    #: vLLM with torch.compile: faster, but ready after ~2 min instead of ~35 s on 2 cores.
    vllm_compiled: bool = False
    #: Threads of llama-server (and Ollama's runner); None is llama.cpp's default (every core).
    #: On a machine busy with other work, 1 can be much faster: llama.cpp's threads wait for
    #: each other at every step.
    llama_threads: int | None = None

    @property
    def top(self) -> int:
        return max(self.levels)

    @property
    def gguf_file(self) -> Path:
        return Path(self.gguf) if self.gguf else course_gguf(self.model)


@contextmanager
def _transformers(options: Options) -> Iterator[Running]:
    from llmlab.local.generation import LocalLLM

    llm = LocalLLM(options.model)
    target = InProcess(llm, max_tokens=options.max_tokens, name="Transformers (in process)")
    try:
        setup = f"{llm.model_path}, {llm.dtype}, one request at a time"
        yield Running(target, setup, model_bytes_per_token(llm.model))
    finally:
        llm.close()  # on a GPU, its memory back to the driver before vLLM starts


@contextmanager
def _service(options: Options) -> Iterator[Running]:
    batch = max(16, options.top)
    args = ["--max-batch-size", str(batch), "--max-queue", str(max(64, 2 * batch))]
    with service_server(*args, model=options.model) as server:
        model = httpx.get(server.url("/v1/models"), timeout=10).json()["data"][0]["id"]
        target = OpenAIChat(
            server.url("/v1"), model, max_tokens=options.max_tokens, name="FastAPI service"
        )
        setup = f"python -m llmlab.service, continuous batches of up to {batch}"
        yield Running(target, setup, _folder_bytes(options.model, detect_hardware().compute_dtype))


@contextmanager
def _vllm(options: Options) -> Iterator[Running]:
    from llmlab.servers.vllm import vllm_server

    if importlib.util.find_spec("vllm") is None:
        raise MissingPackageError(
            "vllm", "pip install 'llmlab[cpu]' (CPU) or pip install 'llmlab[cuda]' (GPU)", "vLLM"
        )
    eager = not options.vllm_compiled
    server = vllm_server(options.model, enforce_eager=eager, max_num_seqs=options.top)
    with server:
        target = OpenAIChat(
            server.url("/v1"), server.model, max_tokens=options.max_tokens, name="vLLM"
        )
        mode = "--enforce-eager" if eager else "torch.compile"
        setup = f"{server.model}, {mode}, --max-num-seqs {options.top}"
        yield Running(target, setup, _folder_bytes(options.model, detect_hardware().half_dtype))


@contextmanager
def _llama_server(options: Options) -> Iterator[Running]:
    threads, gguf = options.llama_threads, options.gguf_file
    with llama_server(gguf, parallel=options.top, threads=threads) as server:
        target = OpenAIChat(
            server.url("/v1"), server.model, max_tokens=options.max_tokens, name="llama-server"
        )
        cores = f"{threads} thread(s)" if threads else "default threads"
        setup = f"{server.model}.gguf, --parallel {options.top} slots, {cores}"
        yield Running(target, setup, gguf_bytes_per_token(gguf))


@contextmanager
def _ollama(options: Options) -> Iterator[Running]:
    import ollama

    gguf = options.gguf_file
    with ExitStack() as stack:
        url = find_ollama()
        if url:
            name = "Ollama"
            setup = f"a real Ollama at {url} (its own OLLAMA_NUM_PARALLEL), model {OLLAMA_MODEL}"
        else:
            store = stack.enter_context(tempfile.TemporaryDirectory(prefix="llmlab-ollama-"))
            server = ollama_server(
                store_dir=store, parallel=options.ollama_parallel, threads=options.llama_threads
            )
            url = stack.enter_context(server).base_url
            name = "Ollama-compatible (llmlab.ollama)"
            setup = (
                f"no Ollama here: the course's Ollama API on llama-server, {gguf.name}, "
                f"{options.ollama_parallel} request(s) at a time per model, as OLLAMA_NUM_PARALLEL"
            )
        # A GGUF file goes up as a blob first: the one way a real Ollama takes a local file.
        client = ollama.Client(host=url, timeout=300)
        client.create(model=OLLAMA_MODEL, files={gguf.name: client.create_blob(gguf)})
        target = OllamaChat(url, OLLAMA_MODEL, max_tokens=options.max_tokens, name=name)
        setup += "; no ignore_eos: answers may stop early"
        yield Running(target, setup, gguf_bytes_per_token(gguf))


def _folder_bytes(model: str | None, dtype: str) -> float:
    """The weights a server that loads ``model`` in ``dtype`` reads per token."""
    return folder_bytes_per_token(local_folder(resolve_model(model)), bytes_per_param(dtype))


BACKENDS: dict[str, Backend[Options]] = {
    backend.name: backend
    for backend in [
        Backend("transformers", "Transformers in this process", _transformers, one_at_a_time=True),
        Backend("service", "the course's FastAPI service (llmlab.service)", _service),
        Backend("vllm", "vLLM's OpenAI-compatible server", _vllm),
        Backend("llama-server", "llama.cpp's llama-server", _llama_server),
        Backend("ollama", "Ollama, or the course's Ollama-compatible server", _ollama),
    ]
}


def choose(only: Sequence[str] | None = None, skip: Sequence[str] = ()) -> list[Backend[Options]]:
    """The backends to run, in the order of ``BACKENDS``; an unknown name is an error."""
    for name in [*(only or ()), *skip]:
        if name not in BACKENDS:
            raise ValueError(f"no backend {name!r}; the backends: {', '.join(BACKENDS)}")
    names = [name for name in BACKENDS if (not only or name in only) and name not in skip]
    return [BACKENDS[name] for name in names]


async def compare(
    levels: Sequence[int] = (1, 4, 16),
    max_tokens: int = 64,
    *,
    only: Sequence[str] | None = None,
    skip: Sequence[str] = (),
    backends: Sequence[Backend[Options]] | None = None,
    progress: bool = True,
    **settings: object,
) -> Comparison:
    """Start, warm up, sweep and stop each backend in turn (``llmlab.bench.compare``).

    ``backends`` (default: ``choose(only, skip)``) may include your own ``Backend``.
    ``settings`` are the other fields of ``Options`` (model, gguf, ollama_parallel,
    vllm_compiled, llama_threads). In a notebook: ``comparison = await compare([1, 4, 16])``.
    """
    levels = tuple(sorted(set(levels)))
    if not levels or levels[0] < 1:
        raise ValueError(f"concurrency levels must be 1 or more, not {levels}")
    options = Options(levels, max_tokens, **settings)  # type: ignore[arg-type]
    chosen = backends if backends is not None else choose(only, skip)
    bandwidth = measure_read_bandwidth()  # before any server: the whole machine is free
    print(f"memory read bandwidth: {bandwidth / 1e9:.1f} GB/s")
    runs = await run_backends(chosen, options, levels, progress=progress)
    workload = (
        f"Model: {model_setting(options.model)} (llama-server and Ollama: its GGUF file, named "
        "with their setup below). "
        f"Workload: the course's sample chats, greedy, {max_tokens} output tokens a request, "
        f"{sweep_waves()} x concurrency requests per level (at least {MIN_REQUESTS}), after one "
        "warm-up request per backend that is not counted. The load generator shares the machine "
        "with the server."
    )
    settings_used = {"model": model_setting(options.model), "gguf": options.gguf,
                     "ollama_parallel": options.ollama_parallel}  # fmt: skip
    return Comparison(levels, max_tokens, runs, machine_summary(), workload,
                      settings_used, bandwidth)  # fmt: skip


def write_report(comparison: Comparison, out: str | Path | None = None) -> dict[str, Path]:
    """Write results.md, results.csv, results.json, throughput.png and ttft.png into ``out``
    (default: ``compare_deployments/`` in the cache folder); return their paths."""
    folder = Path(out) if out else cache_dir() / "compare_deployments"
    return write_files(comparison, folder)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m solutions.compare_deployments",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="backends: " + "; ".join(f"{b.name}: {b.description}" for b in BACKENDS.values()),
    )
    parser.add_argument("--out", help="folder for the results (default: in the cache folder)")
    parser.add_argument(
        "--levels",
        type=int,
        nargs="+",
        default=[1, 4, 16],
        help="requests in flight, one run each (default: 1 4 16)",
    )
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens in every answer")
    parser.add_argument("--only", nargs="+", choices=list(BACKENDS), help="run only these")
    parser.add_argument(
        "--skip", nargs="+", choices=list(BACKENDS), default=[], help="run all but these"
    )
    parser.add_argument("--model", help="Transformers model (default: $LLMLAB_MODEL or SmolLM2)")
    parser.add_argument("--gguf", help="GGUF file for llama-server and Ollama")
    parser.add_argument(
        "--ollama-parallel",
        type=int,
        default=1,
        help="requests the course's Ollama server runs at once per model "
        "(Ollama's OLLAMA_NUM_PARALLEL; default 1)",
    )
    parser.add_argument(
        "--llama-threads",
        type=int,
        help="threads of llama-server and Ollama's runner (default: llama.cpp's, every core; "
        "1 can be faster on a machine busy with other work)",
    )
    parser.add_argument(
        "--vllm-compiled",
        action="store_true",
        help="let vLLM compile (faster, ~2 min to start on 2 cores)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    comparison = asyncio.run(
        compare(
            args.levels,
            args.max_tokens,
            only=args.only,
            skip=args.skip,
            model=args.model,
            gguf=args.gguf,
            ollama_parallel=args.ollama_parallel,
            vllm_compiled=args.vllm_compiled,
            llama_threads=args.llama_threads,
        )
    )
    paths = write_report(comparison, args.out)
    print("\n" + comparison.markdown())
    for path in paths.values():
        print(f"wrote {path}")
    return 0 if comparison.results else 1


if __name__ == "__main__":
    sys.exit(main())
