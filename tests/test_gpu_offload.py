"""-ngl: how many of a model's layers a GPU holds, by the course's arithmetic, and the flag that
reaches llama-server. The GPU is a number here; a CPU build of llama-server takes the flag too."""

import httpx
import pytest

from llmlab.llamacpp.offload import (
    FIT_MARGIN_GIB,
    gpu_layers_that_fit,
    layer_gib,
    offloadable_layers,
)
from llmlab.servers.llamacpp import llama_server
from llmlab.sizing.memory import REFERENCE_MODELS

QWEN_7B = REFERENCE_MODELS["Qwen2.5-7B-Instruct"]  # 28 blocks and the output layer


def test_a_card_with_room_for_the_whole_model_takes_every_layer():
    assert offloadable_layers(QWEN_7B) == 29
    assert gpu_layers_that_fit(QWEN_7B, free_gib=24) == 29
    assert gpu_layers_that_fit(QWEN_7B, free_gib=80, dtype="bfloat16") == 29


def test_a_small_card_takes_what_fits_after_the_margin_and_the_rest_runs_on_the_cpu():
    layers = gpu_layers_that_fit(QWEN_7B, free_gib=4)
    assert 0 < layers < offloadable_layers(QWEN_7B)
    used = layers * layer_gib(QWEN_7B) + FIT_MARGIN_GIB
    assert used <= 4 < used + layer_gib(QWEN_7B) + 0.5  # one more layer would not fit
    assert gpu_layers_that_fit(QWEN_7B, free_gib=1) == 0  # the margin alone


def test_16_bit_weights_and_a_long_context_leave_room_for_fewer_layers():
    q4 = gpu_layers_that_fit(QWEN_7B, free_gib=6)
    assert gpu_layers_that_fit(QWEN_7B, free_gib=6, dtype="bfloat16") < q4
    assert gpu_layers_that_fit(QWEN_7B, free_gib=6, context_length=32768) < q4


@pytest.mark.server
def test_llama_server_gets_the_gpu_layers_it_is_given():
    with llama_server(parallel=1, gpu_layers=0) as server:
        assert server.command[server.command.index("--gpu-layers") + 1] == "0"
        body = {"prompt": "Hello", "n_predict": 2}
        assert httpx.post(server.url("/completion"), json=body, timeout=60).status_code == 200
    assert "--gpu-layers" not in llama_server()._template  # llama-server's own `auto`
