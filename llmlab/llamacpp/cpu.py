"""Which of llama.cpp's CPU code paths really run on this machine, checked once and remembered.

A native build of llama.cpp compiles the fastest kernels the CPU reports, and at run time moves
the weights into the layouts those kernels want ("repacking"): AMX tiles on recent Intel Xeons,
AVX-512 or ARM interleaved blocks elsewhere. A CPU can report a feature that the machine does
not let a program use. On an Intel Xeon in a virtual machine that lists ``amx_tile`` but does not
grant AMX tile state, llama-server dies at its first matrix product (``ldtilecfg`` in
``ggml_backend_amx_mul_mat``), before it ever answers: SIGSEGV on one such machine, SIGILL on
another. Any death by a signal counts as such a crash here.

``--no-repack`` turns those extra buffer types off (AMX among them) and the same binary runs.
So before the first llama-server starts, :func:`llama_server_cpu_args` starts it once on the
course's small GGUF, asks for a few tokens, and, if it crashed, tries again with
``--no-repack``. The answer is written next to the cache of llama.cpp builds, keyed by the binary
and the CPU, so every later llama-server (chapters, the Ollama-compatible server's runners,
replicas) starts at once with the flags that work.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import signal
import subprocess
from pathlib import Path

import httpx
from filelock import FileLock

from llmlab.errors import ServerStartError
from llmlab.models import default_gguf
from llmlab.servers import Server
from llmlab.settings import cache_dir

NO_REPACK = ("--no-repack",)
#: Flag sets tried in order: llama.cpp's defaults, then without the repacked (AMX) kernels.
CANDIDATES: tuple[tuple[str, ...], ...] = ((), NO_REPACK)


def llama_server_cpu_args(server: Path) -> tuple[str, ...]:
    """The extra flags ``server`` needs to run on this CPU (usually none), checked once."""
    return tuple(_decision(server)["args"])


def cpu_check_summary(server: Path) -> str:
    """One line for the user: which flags llama-server gets on this CPU, and why."""
    decision = _decision(server)
    if not decision["args"]:
        return "llama.cpp's default CPU kernels run on this CPU (checked once)"
    crashes = ", ".join(_describe(code) for code in decision["crashed_without"])
    return (
        f"llama-server crashed on this CPU with its default kernels ({crashes}), so every "
        f"llama-server here starts with {' '.join(decision['args'])}, which turns off the "
        f"repacked kernels (AMX and similar)"
    )


def _decision(server: Path) -> dict:
    record = record_path(server)
    if not record.exists():
        with FileLock(f"{record}.lock", timeout=300):
            if not record.exists():
                _check(server, record)
    return json.loads(record.read_text())


def record_path(server: Path) -> Path:
    """Where the answer for ``server`` on this CPU is kept: a new binary or CPU asks again."""
    stat = Path(server).resolve().stat()
    identity = f"{Path(server).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{cpu_identity()}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    folder = cache_dir() / "llama.cpp" / "cpu-checks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{digest}.json"


def cpu_identity() -> str:
    """The CPU's model name and feature flags (what decides which kernels run)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    wanted = ("model name", "flags", "Features", "CPU part")
    lines = [line for line in text.splitlines() if line.split(":")[0].strip() in wanted]
    return "\n".join(dict.fromkeys(lines))  # once each, not once per core


#: Instruction-set flags of /proc/cpuinfo (x86 and ARM) that a native build of llama.cpp may use.
ISA_FLAG = re.compile(r"^(sse|ssse|avx|amx|fma|f16c|bmi|popcnt|movbe|lzcnt|abm|aes|pclmul|sha|"
                      r"vpclmul|gfni|vaes|vnni|asimd|sve|i8mm|dotprod|fphp)")  # fmt: skip


def isa_flags() -> set[str]:
    """The instruction sets this CPU reports: a binary built natively on a CPU with more may
    stop with SIGILL here."""
    words = " ".join(
        line.partition(":")[2]
        for line in cpu_identity().splitlines()
        if line.split(":")[0].strip() in ("flags", "Features")
    ).split()
    return {word for word in words if ISA_FLAG.match(word)}


def _check(server: Path, record: Path) -> None:
    crashes: list[int] = []
    for args in CANDIDATES:
        returncode = _answers(server, args)
        if returncode is None:
            record.write_text(json.dumps({"args": list(args), "crashed_without": crashes}))
            if args:
                print(f"llama.cpp: {cpu_check_summary(server)}. Remembered in {record}.")
            return
        crashes.append(returncode)
    raise ServerStartError(
        f"llama-server ({server}) crashed on this CPU with every setting tried "
        f"({', '.join(' '.join(a) or 'defaults' for a in CANDIDATES)}: "
        f"{', '.join(_describe(code) for code in crashes)}). Build it again for this machine: "
        f"delete {server.parent.parent} and run python -m llmlab.llamacpp.build."
    )


def _answers(server: Path, args: tuple[str, ...]) -> int | None:
    """None when llama-server with ``args`` starts and generates; else the signal that ended it.

    A start that fails for another reason (a bad model file, a port) is not the CPU's fault:
    its error is raised as it is, and nothing is remembered.
    """
    probe = Server(
        [str(server), "--model", str(default_gguf()), "--host", "{host}", "--port", "{port}",
         "--ctx-size", "256", "--parallel", "1", *args],
        name="llama-server-cpu-check",
        startup_timeout_s=120,
    )  # fmt: skip
    try:
        probe.start()
    except ServerStartError as error:
        if error.returncode is not None and error.returncode < 0:
            return error.returncode
        raise
    try:
        answer = httpx.post(
            probe.url("/completion"), json={"prompt": "Hello", "n_predict": 4}, timeout=60
        )
        answer.raise_for_status()
        return None
    except httpx.HTTPError:
        try:
            probe.started_process.wait(10)
        except subprocess.TimeoutExpired:  # still running: it failed some other way
            raise ServerStartError(
                f"llama-server started but did not answer a first request. Its log "
                f"({probe.log_path}):\n{probe.log_tail()}"
            ) from None
        returncode = probe.started_process.returncode
        if returncode is not None and returncode < 0:
            return returncode
        raise
    finally:
        probe.stop()


def _describe(returncode: int) -> str:
    try:
        return f"{signal.Signals(-returncode).name}"
    except ValueError:
        return f"exit code {returncode}"
