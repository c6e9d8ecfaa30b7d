"""The hardware helper: detection on this machine, and the memory arithmetic."""

import psutil
import pytest

from llmlab.sizing.hardware import Hardware, detect_hardware, recommend
from llmlab.sizing.memory import REFERENCE_MODELS, Architecture, estimate_memory

SEVEN_B = REFERENCE_MODELS["Qwen2.5-7B-Instruct"]


def test_detects_this_machine():
    hardware = detect_hardware()
    assert hardware.device in {"cuda", "mps", "cpu"}
    assert 0 < hardware.available_memory_gib <= hardware.total_memory_gib
    if hardware.device == "cpu":
        assert hardware.total_memory_gib == pytest.approx(psutil.virtual_memory().total / 2**30)


def test_weights_are_parameters_times_bytes():
    estimate = estimate_memory(SEVEN_B, "bfloat16", context_length=1)
    assert estimate.weights_gib == pytest.approx(7.62e9 * 2 / 2**30)
    assert estimate_memory(SEVEN_B, "float32").weights_gib == pytest.approx(
        2 * estimate.weights_gib
    )


def test_kv_cache_grows_with_context_and_batch():
    one = estimate_memory(SEVEN_B, context_length=1024, batch_size=1).kv_cache_gib
    # 2 (K, V) x 28 layers x 4 KV heads x 128 x 2 bytes = 56 KiB per token
    assert one == pytest.approx(56 * 1024 * 1024 / 2**30)
    assert estimate_memory(SEVEN_B, context_length=4096, batch_size=8).kv_cache_gib == (
        pytest.approx(32 * one)
    )


@pytest.mark.parametrize(
    ("model", "low", "high"),
    [
        ("Qwen2.5-3B-Instruct", 6, 8),
        ("Qwen2.5-7B-Instruct", 16, 24),
        ("Llama-2-13b-chat", 28, 40),
        ("Qwen2.5-32B-Instruct", 64, 200),
    ],
)
def test_reproduces_the_source_chapters_table_for_16_bit_weights(model, low, high):
    """The source chapter's GPU-memory column holds for fp16/bf16 weights at a 4k context."""
    total = estimate_memory(REFERENCE_MODELS[model], "float16").total_gib
    assert low * 0.93 <= total <= high  # the table's GB are close to GiB; allow that slack


def test_the_table_overstates_small_models():
    """1.5B in 16-bit needs about 4 GiB, not the table's 6-8 GB."""
    total = estimate_memory(REFERENCE_MODELS["Qwen2.5-1.5B-Instruct"], "float16").total_gib
    assert total < 6 * 0.93


def test_unknown_dtype_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown dtype 'fp8'"):
        estimate_memory(SEVEN_B, "fp8")


def gpu(free_gib: float, capability: tuple[int, int] = (9, 0)) -> Hardware:
    return Hardware("cuda", "test GPU", free_gib, free_gib, 8, compute_capability=capability)


def cpu(free_gib: float) -> Hardware:
    return Hardware("cpu", "CPU", free_gib, free_gib, 2)


def test_recommends_vllm_in_16_bit_on_a_big_gpu():
    choice = recommend(SEVEN_B, gpu(80), users=16)
    assert (choice.method, choice.dtype) == ("vLLM", "bfloat16")


@pytest.mark.parametrize(
    ("hardware", "half"),
    [
        (gpu(15, (7, 5)), "float16"),  # Colab's T4: bfloat16 only emulated; vLLM refuses it
        (gpu(24, (8, 0)), "bfloat16"),  # A100, and every GPU since
        (gpu(24, (8, 9)), "bfloat16"),
        (Hardware("cuda", "unknown", 8, 8, 2), "float16"),  # no capability known: the safe one
        (cpu(16), "bfloat16"),  # vLLM's CPU build (Transformers on a CPU: float32)
        (Hardware("mps", "Apple GPU", 16, 8, 8), "float16"),
    ],
)
def test_each_device_computes_in_its_own_16_bit_type(hardware, half):
    assert hardware.half_dtype == half
    # Transformers on a CPU computes in float32; on a GPU in the same 16-bit type as vLLM
    assert hardware.compute_dtype == ("float32" if hardware.device == "cpu" else half)
    if hardware.device != "cpu":
        assert recommend(SEVEN_B, hardware, users=16).dtype in (half, "q4_k_m")


def test_recommends_4_bit_llama_cpp_when_16_bit_does_not_fit():
    choice = recommend(SEVEN_B, gpu(8))
    assert choice.method.startswith("llama.cpp") and choice.dtype == "q4_k_m"
    assert choice.estimate.total_gib <= 8


def test_recommends_float32_transformers_for_a_small_model_on_a_cpu():
    tiny = Architecture(135e6, num_layers=30, num_kv_heads=3, head_dim=64)
    choice = recommend(tiny, cpu(20))
    assert choice.method.startswith("Transformers") and choice.dtype == "float32"


def test_recommends_several_gpus_when_nothing_fits():
    choice = recommend(REFERENCE_MODELS["Qwen2.5-32B-Instruct"], gpu(16))
    assert "several GPUs" in choice.method


def test_vllm_on_an_older_gpu_is_told_float16(monkeypatch):
    import llmlab.servers.vllm as vllm

    monkeypatch.setattr(vllm, "detect_hardware", lambda: gpu(15, (7, 5)))
    command = vllm.vllm_server()._template  # the command, before start fills in the port
    assert command[command.index("--dtype") + 1] == "float16"


@pytest.mark.parametrize(("free", "share"), [(80, 0.85), (40, 0.49), (20.5, 0.25)])
def test_vllm_takes_no_more_of_the_gpu_than_is_free(free, share):
    from llmlab.servers.vllm import gpu_memory_utilization

    h100 = Hardware("cuda", "H100", 80, free, 16, compute_capability=(9, 0))
    assert gpu_memory_utilization(h100) == share  # less 0.5 GiB of headroom, rounded down


def test_vllm_on_a_gpu_another_kernel_fills_says_what_to_free():
    from llmlab.errors import ModelTooLargeError
    from llmlab.servers.vllm import gpu_memory_utilization

    with pytest.raises(ModelTooLargeError, match="Only 1.0 GiB of the GPU's 16.0 GiB are free"):
        gpu_memory_utilization(Hardware("cuda", "T4", 16, 1, 2, compute_capability=(7, 5)))


def test_the_share_of_the_gpu_vllm_takes_is_a_setting(monkeypatch):
    import llmlab.servers.vllm as vllm

    monkeypatch.setattr(vllm, "detect_hardware", lambda: gpu(80, (9, 0)))

    def share(**arguments) -> str:
        command = vllm.vllm_server(**arguments)._template
        return command[command.index("--gpu-memory-utilization") + 1]

    assert share() == "0.85"
    monkeypatch.setenv("LLMLAB_GPU_SHARE", "0.4")  # a GPU shared with other work
    assert share() == "0.40"
    assert share(gpu_share=0.6) == "0.60"  # the argument wins
    monkeypatch.setenv("LLMLAB_GPU_SHARE", "40%")
    with pytest.raises(ValueError, match="LLMLAB_GPU_SHARE must be a share"):
        share()
    with pytest.raises(ValueError, match="gpu_share is a share"):
        share(gpu_share=85)
