"""Finding llama.cpp's tools: a named binary first, else the build in the cache folder."""

import os
from pathlib import Path

import pytest

from llmlab.llamacpp.build import (
    CUDA_ENV,
    ToolchainError,
    build_dir,
    build_tools,
    cmake_configure,
    cuda_compiler,
    find_tools,
)
from llmlab.llamacpp.sources import SourceReleaseError, archive_name, source_release
from llmlab.llamacpp.webui import SOURCE as PAGE_SOURCE


def test_the_cached_build_has_every_tool():
    tools = build_tools()
    assert tools.server.is_file() and tools.quantize.is_file() and tools.converter.is_file()
    assert tools.perplexity is not None and tools.perplexity.is_file()
    assert tools.version.startswith("version:")


def test_a_named_llama_server_is_used_as_it_is(monkeypatch):
    built = build_tools()
    monkeypatch.setenv("LLAMA_SERVER", str(built.server))
    tools = find_tools()
    assert tools.server == built.server
    assert tools.quantize == built.quantize  # found beside it
    assert tools.perplexity == built.perplexity


def test_a_missing_compiler_is_explained(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMLAB_CACHE", str(tmp_path))  # nothing built here yet
    monkeypatch.setenv("CXX", "no-such-compiler++")
    with pytest.raises(ToolchainError, match="no-such-compiler\\+\\+.*build-essential cmake"):
        build_tools()


def _executable(folder, name):
    path = folder / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def gpu_machine(monkeypatch, tmp_path):
    """PATH with an nvidia-smi and an nvcc that are only names: the decisions, not a GPU."""
    tools = tmp_path / "cuda-bin"
    tools.mkdir()
    _executable(tools, "nvidia-smi")
    nvcc = _executable(tools, "nvcc")
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    monkeypatch.delenv("CUDACXX", raising=False)
    monkeypatch.delenv(CUDA_ENV, raising=False)
    return nvcc


def test_a_machine_with_an_nvidia_gpu_and_nvcc_builds_the_cuda_kernels(gpu_machine):
    assert cuda_compiler() == gpu_machine
    assert build_dir().name.endswith("-cuda") and build_dir() != build_dir(cuda=False)
    configure = cmake_configure(Path("src"), Path("build"), cuda_compiler())
    assert "-DGGML_CUDA=ON" in configure and f"-DCMAKE_CUDA_COMPILER={gpu_machine}" in configure
    assert "-DCMAKE_CUDA_ARCHITECTURES=native" in configure  # not every GPU generation


def test_the_cpu_build_is_kept_when_asked_or_without_a_gpu(gpu_machine, monkeypatch):
    monkeypatch.setenv(CUDA_ENV, "0")
    assert cuda_compiler() is None and not build_dir().name.endswith("-cuda")
    with pytest.raises(ToolchainError, match="CUDA build of llama.cpp needs"):
        build_tools(cuda=True)
    monkeypatch.delenv(CUDA_ENV)
    (gpu_machine.parent / "nvidia-smi").unlink()  # a CUDA toolkit but no GPU (a CI machine)
    assert cuda_compiler() is None
    assert not any("CUDA" in arg for arg in cmake_configure(Path("src"), Path("build")))


def test_a_source_release_in_the_kit_is_taken_from_it_with_no_index(monkeypatch, tmp_path):
    held = tmp_path / "kit" / "packages" / archive_name(PAGE_SOURCE)
    held.parent.mkdir(parents=True)
    held.write_bytes(b"the kit's copy")
    monkeypatch.setenv("LLMLAB_KIT", str(tmp_path / "kit"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # as bin/setup sets it for a kit
    assert held.name == "llama_cpp_python-0.3.19.tar.gz"  # the name pip gives it in the kit
    assert source_release(PAGE_SOURCE, tmp_path) == held


def test_a_source_release_in_neither_the_kit_nor_an_index_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMLAB_KIT", str(tmp_path))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    with pytest.raises(SourceReleaseError, match=r"0\.3\.19 is in neither the kit .* nor on PyPI"):
        source_release(PAGE_SOURCE, tmp_path)
