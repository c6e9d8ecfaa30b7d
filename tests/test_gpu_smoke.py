"""The GPU smoke test: the course's in-process paths on every device this machine has.

The model is a tiny one with random weights, made here from SmolLM2's tokenizer and chat
template and a shrunken config (two layers, a few MB): no download, and its text means nothing,
so every check is about placement, dtype, shapes and counts, never about what it says. The CPU
cases run everywhere; the CUDA cases skip, saying so, where ``torch.cuda.is_available()`` is
false, and vLLM's where no CUDA build of vLLM imports.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import weakref
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from llmlab.local.batching import generate_batch
from llmlab.local.generation import LocalLLM, pick_dtype
from llmlab.local.profiling import peak_memory
from llmlab.local.sampling import SamplingParams
from llmlab.models import resolve_model
from llmlab.prompts import chat
from llmlab.service.continuous import ContinuousEngine
from llmlab.service.engine import Engine, Finished
from llmlab.sizing.hardware import detect_hardware

ROOT = Path(__file__).resolve().parents[1]
NO_CUDA = "no CUDA GPU here: the GPU smoke test runs where torch.cuda.is_available()"
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]
SHRUNKEN = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16}  # fmt: skip


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2's tokenizer and architecture, two layers of random weights, in bfloat16."""
    folder = tmp_path_factory.mktemp("tiny-smollm2")
    source = resolve_model()
    config = AutoConfig.from_pretrained(source)
    config.update(SHRUNKEN)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


@pytest.fixture(params=DEVICES)
def llm(request: pytest.FixtureRequest, tiny_model: Path) -> LocalLLM:
    return LocalLLM(str(tiny_model), device=request.param)


def test_the_model_is_on_the_device_in_the_dtype_chosen_for_it(llm: LocalLLM):
    weights = next(llm.model.parameters())
    assert weights.device.type == llm.device
    expected = pick_dtype(replace(detect_hardware(), device=llm.device))
    assert weights.dtype == llm.dtype == expected
    if llm.device == "cuda":  # the card's 16-bit type: bfloat16 from compute capability 8.0
        major, _ = torch.cuda.get_device_capability()
        assert expected == (torch.bfloat16 if major >= 8 else torch.float16)
        assert torch.cuda.memory_allocated() > 0


def test_a_batch_generates_every_row_on_the_device(llm: LocalLLM):
    prompts = [chat("Hi"), chat("Name three rivers of Europe, please."), "Once upon a time"]
    results = generate_batch(llm, prompts, SamplingParams(max_new_tokens=6, ignore_eos=True),
                             batch_size=2, progress=False)  # fmt: skip
    assert [r.usage.completion_tokens for r in results] == [6, 6, 6]
    assert [r.usage.prompt_tokens for r in results] == [len(llm.encode(p)) for p in prompts]


@pytest.mark.parametrize("scheduler", [ContinuousEngine, Engine])
def test_the_service_engine_batches_requests_on_the_device(llm: LocalLLM, scheduler):
    async def four_requests() -> list[Finished]:
        engine = scheduler(llm, max_batch_size=4)
        params = SamplingParams(max_new_tokens=5, ignore_eos=True)
        requests = [engine.submit(llm.encode(chat(f"Question {i}")), params) for i in range(4)]
        answers = await asyncio.gather(*(request.result() for request in requests))
        await engine.aclose()
        return [finished for _, finished in answers]

    finished = asyncio.run(four_requests())
    assert [f.usage.completion_tokens for f in finished] == [5, 5, 5, 5]
    assert all(f.error is None and f.finish_reason == "length" for f in finished)


@CUDA
@pytest.mark.notebook
@pytest.mark.timeout(1200)
def test_chapter_01_runs_on_the_gpu(tiny_model: Path, tmp_path: Path):
    """Every cell of chapter 01 on CUDA, with the tiny model as $LLMLAB_MODEL (its figures
    mean nothing; what is checked is that no cell fails on a GPU)."""
    env = {**os.environ, "LLMLAB_MODEL": str(tiny_model)}
    run = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         "--output-dir", str(tmp_path), str(ROOT / "chapters" / "01_transformers.ipynb")],
        env=env, capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]


def _cuda_vllm() -> bool:
    if not torch.cuda.is_available() or importlib.util.find_spec("vllm") is None:
        return False
    from vllm.platforms import current_platform

    return current_platform.is_cuda()


@pytest.mark.server
@pytest.mark.vllm
@pytest.mark.skipif(not _cuda_vllm(), reason="needs a GPU and a CUDA build of vLLM")
def test_vllm_serves_the_tiny_model_on_the_gpu(tiny_model: Path):
    from llmlab.servers.vllm import vllm_server

    with vllm_server(str(tiny_model), enforce_eager=True, max_num_seqs=4) as server:
        body = {"model": server.model, "prompt": "Hello", "max_tokens": 4, "ignore_eos": True}
        answer = httpx.post(server.url("/v1/completions"), json=body, timeout=120).json()
    assert answer["usage"]["completion_tokens"] == 4


def test_closing_the_model_gives_its_memory_back(tiny_model: Path):
    cpu = LocalLLM(str(tiny_model), device="cpu")
    weights = weakref.ref(next(cpu.model.parameters()))
    cpu.close()
    assert weights() is None  # nothing in the course holds the weights any more
    if torch.cuda.is_available():  # the allocator's cache too, where vLLM would need it
        before = torch.cuda.memory_reserved()
        gpu = LocalLLM(str(tiny_model), device="cuda")
        assert torch.cuda.memory_reserved() > before
        gpu.close()
        assert torch.cuda.memory_reserved() <= before


def test_memory_is_measured_where_the_model_is(llm: LocalLLM):
    inputs = {"input_ids": torch.tensor([llm.encode(chat("Hi"))], device=llm.model.device)}
    with peak_memory(device=llm.device) as memory, torch.inference_mode():
        llm.model.generate(**inputs, max_new_tokens=8, min_new_tokens=8, do_sample=False)
    assert memory.peak_bytes >= memory.baseline_bytes > 0
    if llm.device == "cuda":  # PyTorch's own count: the weights at least
        assert memory.baseline_bytes >= llm.model.get_memory_footprint()
