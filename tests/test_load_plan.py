"""Exercise 1's planner (``llmlab.sizing.load_plan``) on made-up machines, and the memory
figure it shares with chapters 01 and 08."""

from __future__ import annotations

import huggingface_hub.constants
import pytest
import torch

from llmlab.models import resolve_model
from llmlab.sizing import model_size
from llmlab.sizing.capacity import check_source_table, replica_shape
from llmlab.sizing.hardware import Hardware
from llmlab.sizing.load_plan import LoadPlan, plan_load
from llmlab.sizing.memory import REFERENCE_MODELS, estimate_memory
from llmlab.sizing.model_size import count_parameters

QWEN_7B = REFERENCE_MODELS["Qwen2.5-7B-Instruct"]
#: Qwen2.5-7B's embeddings and its (untied) output layer: 152,064 tokens x 3,584.
QWEN_7B_EMBEDDINGS = 2 * 152_064 * 3_584


def plan_7b(hardware: Hardware, **options: object) -> LoadPlan:
    return plan_load(
        int(QWEN_7B.num_params),
        hardware,
        architecture=QWEN_7B,
        unquantized_parameters=QWEN_7B_EMBEDDINGS,
        name="Qwen2.5-7B-Instruct",
        **options,
    )


def cpu(free_gib: float) -> Hardware:
    return Hardware("cpu", "CPU", free_gib, free_gib, 2)


def gpu(free_gib: float, capability: tuple[int, int] = (8, 9)) -> Hardware:
    return Hardware("cuda", "test GPU", free_gib, free_gib, 16, compute_capability=capability)


def test_a_16_gib_laptop_refuses_7b_and_says_what_would_fit():
    plan = plan_7b(cpu(16))
    assert not plan.fits
    assert "needs 16.3 GiB in bfloat16" in plan.refusal
    assert "this machine has 16.0 GiB available" in plan.refusal
    assert "Qwen2.5-3B-Instruct in bfloat16 (7.0 GiB)" in plan.refusal
    assert "GGUF Q4_K_M with llama.cpp (chapter 04, 5.4 GiB) would fit" in plan.refusal
    assert "plan: refuse" in plan.table()


@pytest.mark.parametrize(("free_gib", "dtype"), [(24, "bfloat16"), (64, "float32")])
def test_a_cpu_takes_float32_only_when_memory_is_ample(free_gib, dtype):
    plan = plan_7b(cpu(free_gib))
    assert (plan.fits, plan.device, plan.dtype, plan.quantization) == (True, "cpu", dtype, None)
    assert plan.from_pretrained_kwargs() == {
        "dtype": getattr(torch, dtype),
        "device_map": "cpu",
    }
    assert any("llama.cpp" in note for note in plan.notes)  # the hardware helper's advice


@pytest.mark.parametrize(
    ("capability", "dtype"), [((8, 0), "bfloat16"), ((9, 0), "bfloat16"), ((7, 5), "float16")]
)
def test_a_24_gib_gpu_takes_7b_in_16_bit_of_its_own_kind(capability, dtype):
    """bfloat16 from Ampere (8.0) on; a T4 (7.5) says is_bf16_supported() but emulates it."""
    plan = plan_7b(gpu(24, capability), ram_available_gib=64)
    assert (plan.device, plan.dtype, plan.device_map, plan.max_memory) == (
        "cuda",
        dtype,
        "cuda",
        None,
    )
    assert plan.quantization is None


def test_an_8_gib_gpu_offloads_to_ram_without_bitsandbytes_and_says_so():
    plan = plan_7b(gpu(8), ram_available_gib=64)
    assert (plan.device_map, plan.dtype, plan.quantization) == ("auto", "bfloat16", None)
    # GPU: 8 GiB - 0.2 of KV cache - 1.9 of runtime; RAM: 64 GiB - the process's 0.5.
    assert plan.max_memory == {0: "5GiB", "cpu": "63GiB"}
    assert plan.from_pretrained_kwargs()["max_memory"] == plan.max_memory
    assert any("bitsandbytes is not installed" in note for note in plan.notes)
    assert "copied to the GPU for every token" in plan.table()


def test_an_8_gib_gpu_quantizes_to_4_bit_with_bitsandbytes():
    plan = plan_7b(gpu(8), ram_available_gib=64, bitsandbytes_available=True)
    assert (plan.device_map, plan.quantization, plan.max_memory) == ("cuda", "4-bit", None)
    config = plan.from_pretrained_kwargs()["quantization_config"]
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"
    assert 6 < plan.estimate.total_gib < 8  # the 16-bit embeddings count: 2 GiB of it


def test_a_small_gpu_with_little_ram_refuses():
    plan = plan_7b(gpu(4, (7, 5)), ram_available_gib=4)
    assert not plan.fits
    assert "needs 16.3 GiB in float16" in plan.refusal
    assert "4.0 GiB free on the GPU and 4.0 GiB of RAM" in plan.refusal
    assert "Qwen2.5-1.5B-Instruct in float16" in plan.refusal


@pytest.mark.parametrize(
    "model", ["Qwen2.5-3B-Instruct", "Qwen2.5-7B-Instruct", "Llama-2-13b-chat"]
)
def test_chapter_01_chapter_08_and_the_exercise_give_the_same_memory(model):
    arch = REFERENCE_MODELS[model]
    chapter_01 = estimate_memory(arch, "float16").total_gib  # section 7's table
    chapter_08 = {row["model"]: row for row in check_source_table()}[model]["needs (GiB)"]
    card = gpu(chapter_01 + 0.05)  # the exercise on a card the model just fits
    plan = plan_load(int(arch.num_params), card, architecture=arch)
    assert (plan.fits, plan.device_map) == (True, "cuda")
    assert round(chapter_01, 1) == chapter_08 == round(plan.estimate.total_gib, 1)
    # vLLM leaves 10% of a card alone: the planner takes the same model on a card 1/0.9 as big.
    assert replica_shape(arch, gpu_memory_gib=(chapter_01 + 0.05) / 0.9).gpus == 1
    assert replica_shape(arch, gpu_memory_gib=(chapter_01 - 0.05) / 0.9).gpus == 2


def test_the_parameter_count_from_disk_matches_the_loaded_model(llm):
    assert count_parameters(resolve_model()) == llm.model.num_parameters()


@pytest.mark.parametrize(
    ("model", "parameters", "layers", "kv_heads"),
    [
        ("Qwen/Qwen2.5-7B-Instruct", 7_615_616_512, 28, 4),
        ("Qwen/Qwen2.5-32B-Instruct", 32_763_876_352, 64, 8),
        ("Qwen/Qwen2.5-72B-Instruct", 72_706_203_648, 80, 8),
    ],
)
def test_the_models_the_chapters_name_are_sized_offline(
    model, parameters, layers, kv_heads, monkeypatch
):
    def no_hub(repo_id):
        raise AssertionError(f"asked the hub about {repo_id}")

    monkeypatch.setattr(model_size, "count_parameters_on_hub", no_hub)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import
    size = model_size.size_model(model)
    # The counts the model cards publish (7.61B, 32.8B, 72.7B), from the meta device.
    assert size.parameters == parameters
    assert (size.architecture.num_layers, size.architecture.num_kv_heads) == (layers, kv_heads)
    assert "shipped with the course" in size.source
    name = model.removeprefix("Qwen/")
    if name in REFERENCE_MODELS:  # chapter 01 and 08's table agree with the shipped config
        assert REFERENCE_MODELS[name].num_params == pytest.approx(parameters, rel=0.01)
