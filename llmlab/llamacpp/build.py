"""Find llama.cpp's tools, or build them once from a pinned source into the cache folder.

The course needs four things from llama.cpp: ``llama-server``, ``llama-quantize``,
``llama-perplexity`` (quantization's quality, chapter 04) and the converter script
``convert_hf_to_gguf.py``. A ``llama-server`` already on PATH (Homebrew,
a release download, a package manager) or named by ``$LLAMA_SERVER`` is used as it is, with the
tools beside it. Otherwise they are built from the llama.cpp sources that the
``llama-cpp-python`` source distribution vendors (a pinned release on PyPI, so the build needs
no other download): about 7 minutes on two cores, once; later calls return at once.

Where the machine has an NVIDIA GPU (``nvidia-smi``) and the CUDA compiler (``nvcc``), the build
includes llama.cpp's CUDA kernels for that GPU (``GGML_CUDA``), in a folder of its own beside the
CPU build; ``$LLMLAB_LLAMACPP_CUDA=0`` keeps the CPU build. Such a ``llama-server`` puts as many
layers on the GPU as its free memory holds (``--gpu-layers auto``, its default; see
``llmlab.llamacpp.offload`` for the arithmetic).

Run ``python -m llmlab.llamacpp.build`` to build ahead of a class.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from filelock import FileLock
from tqdm.auto import tqdm

from llmlab.errors import LLMLabError
from llmlab.llamacpp.cpu import cpu_check_summary, isa_flags
from llmlab.llamacpp.sources import KIT_ENV, source_release
from llmlab.settings import cache_dir

SOURCE_PACKAGE = "llama-cpp-python==0.3.36"
#: Inside the offline kit (``llmlab.kit``, ``$LLMLAB_KIT``): the tools and the CPU they suit.
KIT_TOOLS, KIT_CPU = "llama.cpp", "cpu.json"
#: "0" keeps llama.cpp's CPU build on a machine that could build the CUDA one.
CUDA_ENV = "LLMLAB_LLAMACPP_CUDA"
#: A build's two folders: the binaries, and the converter with the packages it imports.
TOOL_PARTS = ("bin", "source")
BINARIES = ("llama-server", "llama-quantize", "llama-perplexity")
CONVERTER = "convert_hf_to_gguf.py"
CONVERTER_FILES = (CONVERTER, "conversion", "gguf-py")


class ToolchainError(LLMLabError, RuntimeError):
    """llama.cpp could not be built here; the message says what is missing."""


@dataclass(frozen=True)
class LlamaCppTools:
    server: Path
    quantize: Path | None
    converter: Path | None
    perplexity: Path | None = None

    @property
    def version(self) -> str:
        """What ``llama-server --version`` reports (the llama.cpp build number and commit)."""
        run = subprocess.run(
            [self.server, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
        lines = (run.stdout + run.stderr).strip().splitlines()
        return next((line for line in lines if line.startswith("version")), lines[-1])


def find_tools() -> LlamaCppTools:
    """``$LLAMA_SERVER`` or the one on PATH first, else the cached build (built if needed)."""
    named = os.environ.get("LLAMA_SERVER") or shutil.which("llama-server")
    if named:
        folder = Path(named).resolve().parent
        return LlamaCppTools(
            server=Path(named),
            quantize=_existing(folder / "llama-quantize") or _which("llama-quantize"),
            converter=_existing(folder / CONVERTER),
            perplexity=_existing(folder / "llama-perplexity") or _which("llama-perplexity"),
        )
    return build_tools()


def cuda_compiler() -> Path | None:
    """``nvcc`` where this machine has an NVIDIA GPU to build llama.cpp's CUDA kernels for:
    from ``$CUDACXX``, ``$CUDA_HOME/bin`` or PATH. None without a GPU or a compiler, or with
    ``$LLMLAB_LLAMACPP_CUDA=0``."""
    if os.environ.get(CUDA_ENV) == "0" or shutil.which("nvidia-smi") is None:
        return None
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
    for candidate in (os.environ.get("CUDACXX"), shutil.which("nvcc"), f"{home}/bin/nvcc"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def build_dir(cuda: bool | None = None) -> Path:
    """Where the tools are built: one folder per llama.cpp release, and per GPU support
    (``cuda`` None: with CUDA where ``cuda_compiler()`` finds one)."""
    version = SOURCE_PACKAGE.split("==")[1]
    if cuda is None:
        cuda = cuda_compiler() is not None
    return cache_dir() / "llama.cpp" / f"llama-cpp-python-{version}{'-cuda' if cuda else ''}"


def copy_tools(source: Path, target: Path) -> None:
    """Copy a build's tools (``TOOL_PARTS``) from one folder into another."""
    for part in TOOL_PARTS:
        shutil.copytree(source / part, target / part, dirs_exist_ok=True)


def build_tools(cuda: bool | None = None) -> LlamaCppTools:
    """Build llama.cpp's tools once, with CUDA where ``cuda_compiler()`` finds it (``cuda``
    None) or as ``cuda`` says; a file lock keeps builds from racing."""
    nvcc = cuda_compiler() if cuda is not False else None
    if cuda and nvcc is None:
        raise ToolchainError(
            "A CUDA build of llama.cpp needs an NVIDIA GPU (nvidia-smi) and the CUDA compiler "
            f"(nvcc on PATH, in $CUDA_HOME/bin or named by $CUDACXX), and ${CUDA_ENV} unset."
        )
    target = build_dir(cuda=nvcc is not None)
    tools = LlamaCppTools(
        server=target / "bin" / "llama-server",
        quantize=target / "bin" / "llama-quantize",
        converter=target / "source" / CONVERTER,
        perplexity=target / "bin" / "llama-perplexity",
    )
    if _complete(target):
        return tools
    target.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{target}.lock", timeout=60 * 60):
        if not _complete(target) and (nvcc or not _copy_from_kit(target)):
            _check_toolchain()
            _build(target, nvcc)
    return tools


def _copy_from_kit(target: Path) -> bool:
    """Take the tools of the offline kit named by ``$LLMLAB_KIT`` (``llmlab.kit``) if they were
    built for this kind of machine with no instruction set this CPU lacks; else say why not."""
    kit = Path(os.environ.get(KIT_ENV, "")).expanduser() / KIT_TOOLS
    if not os.environ.get(KIT_ENV) or not (kit / KIT_CPU).is_file():
        return False
    built_for = json.loads((kit / KIT_CPU).read_text())
    lacking = sorted(set(built_for["isa"]) - isa_flags())
    if built_for["machine"] != platform.machine() or lacking:
        print(f"The kit's llama.cpp was built for another CPU ({built_for['machine']}"
              f"{', with ' + ' '.join(lacking[:6]) if lacking else ''}): building it here "
              "from the kit's sources.")  # fmt: skip
        return False
    copy_tools(kit, target)
    return _complete(target)


def _complete(target: Path) -> bool:
    wanted = [target / "bin" / name for name in BINARIES]
    wanted += [target / "source" / name for name in CONVERTER_FILES]
    return all(path.exists() for path in wanted)


def cmake_configure(source: Path, build: Path, nvcc: Path | None = None) -> list[str]:
    """The CMake command that configures the build: the server and tools, statically linked,
    and with ``nvcc`` the CUDA kernels for the GPUs of this machine only (``native``: compiling
    them for every GPU generation would take hours on a laptop)."""
    command = ["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
               "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_CURL=OFF", "-DBUILD_SHARED_LIBS=OFF",
               "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF"]  # fmt: skip
    if nvcc:
        command += ["-DGGML_CUDA=ON", f"-DCMAKE_CUDA_COMPILER={nvcc}",
                    "-DCMAKE_CUDA_ARCHITECTURES=native"]  # fmt: skip
    return command


def _build(target: Path, nvcc: Path | None = None) -> None:
    log_path = target / "build.log"
    with tempfile.TemporaryDirectory(dir=target.parent) as temporary, log_path.open("a") as log:
        scratch = Path(temporary)
        with tarfile.open(source_release(SOURCE_PACKAGE, scratch)) as tar:
            tar.extractall(scratch, filter="data")
        source = next(scratch.glob("llama_cpp_python-*/vendor/llama.cpp"))
        if not all((target / "bin" / name).is_file() for name in BINARIES):
            took = "with CUDA, tens of minutes" if nvcc else "about 7 min on 2 cores"
            print(f"Building llama.cpp once ({took}); log: {log_path}")
            build = scratch / "build"
            _run(cmake_configure(source, build, nvcc), log)
            _compile_with_progress(build, log)
            (target / "bin").mkdir(exist_ok=True)
            for name in BINARIES:
                shutil.copy2(build / "bin" / name, target / "bin" / name)
        # The converter imports the packages that sit beside it in the source tree.
        shutil.rmtree(target / "source", ignore_errors=True)
        (target / "source").mkdir()
        for name in CONVERTER_FILES:
            copy = shutil.copytree if (source / name).is_dir() else shutil.copy2
            copy(source / name, target / "source" / name)


def _compile_with_progress(build: Path, log: TextIO) -> None:
    jobs = str(os.cpu_count() or 2)
    command = ["cmake", "--build", str(build), "--config", "Release", "-j", jobs,
               "--target", *BINARIES]  # fmt: skip
    with (
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as proc,
        tqdm(total=100, desc="Compiling llama.cpp", unit="%") as bar,
    ):
        for line in proc.stdout or ():
            log.write(line)
            percent = re.match(r"\[\s*(\d+)%\]", line)
            if percent:
                bar.update(int(percent.group(1)) - bar.n)
    if proc.returncode:
        raise ToolchainError(f"Compiling llama.cpp failed; see {log.name}")


def _run(command: list[str], log) -> None:
    log.write(f"$ {' '.join(command)}\n")
    log.flush()
    if subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False).returncode:
        raise ToolchainError(f"{command[0]} failed while building llama.cpp; see {log.name}")


def _check_toolchain() -> None:
    # CMake takes the compilers from $CC / $CXX (set by conda's `compilers`) or from PATH.
    wanted = ("cmake", os.environ.get("CXX", "c++"), os.environ.get("CC", "cc"))
    missing = [tool for tool in wanted if shutil.which(tool) is None]
    if missing:
        raise ToolchainError(
            f"Building llama.cpp needs {', '.join(missing)}. Install a compiler and CMake "
            "(Debian/Ubuntu: sudo apt install build-essential cmake; macOS: xcode-select "
            "--install && brew install cmake), or install llama.cpp itself (brew install "
            "llama.cpp, or a release from its GitHub page) and put llama-server on PATH."
        )


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def _which(name: str) -> Path | None:
    found = shutil.which(name)
    return Path(found) if found else None


def main() -> None:
    tools = find_tools()
    print(f"llama-server: {tools.server}\nllama-quantize: {tools.quantize}")
    print(f"llama-perplexity: {tools.perplexity}")
    print(f"converter: {tools.converter}\nversion: {tools.version}")
    print(f"CPU check: {cpu_check_summary(tools.server)}")


if __name__ == "__main__":
    main()
