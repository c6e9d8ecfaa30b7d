"""Finding llama.cpp's tools: a named binary first, else the build in the cache folder."""

import pytest

from llmlab.llamacpp.build import ToolchainError, build_tools, find_tools


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
