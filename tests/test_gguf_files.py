"""GGUF metadata, conversion with llama.cpp's converter, and quantization with llama-quantize."""

import huggingface_hub
import pytest

from llmlab.errors import ModelNotFoundError
from llmlab.llamacpp.gguf import convert_to_gguf, course_gguf, quantize, read_gguf
from llmlab.models import default_gguf, resolve_model


@pytest.fixture(scope="module")
def f16():
    return convert_to_gguf(resolve_model(), "f16")


def test_the_shipped_file_describes_itself():
    summary = read_gguf(default_gguf())
    assert summary.metadata["general.architecture"] == "llama"
    assert summary.metadata["llama.block_count"] == 30
    assert summary.metadata["tokenizer.chat_template"].startswith("{% for message in messages %}")
    assert summary.metadata["tokenizer.ggml.tokens"] == "[49152 items]"
    assert summary.tensor_types["Q4_1"] > 200
    assert summary.parameters == 134_515_008
    assert 5 < summary.bits_per_weight < 6.5


def test_conversion_keeps_every_weight_in_16_bit(f16):
    summary = read_gguf(f16)
    assert summary.parameters == 134_515_008
    assert "F16" in summary.tensor_types
    assert 15.5 < summary.bits_per_weight < 17
    assert convert_to_gguf(resolve_model(), "f16") == f16  # cached


@pytest.mark.parametrize(("quant_type", "low", "high"), [("Q8_0", 8, 9.5), ("Q4_K_M", 4.5, 6.5)])
def test_quantization_shrinks_the_file(f16, quant_type, low, high):
    summary = read_gguf(quantize(f16, quant_type))
    assert low < summary.bits_per_weight < high
    assert summary.parameters == 134_515_008


def test_an_unknown_quantization_is_refused(f16):
    with pytest.raises(ValueError, match="Unknown quantization 'Q1'"):
        quantize(f16, "Q1")


def test_llama_server_serves_the_gguf_of_the_model_setting(monkeypatch, tmp_path):
    assert course_gguf() == default_gguf()  # the default: the shipped file, nothing converted
    monkeypatch.setenv("LLMLAB_MODEL", resolve_model())  # any Transformers folder
    quantized = course_gguf()
    assert quantized.name.endswith("-Q4_K_M.gguf")
    assert read_gguf(quantized).parameters == 134_515_008  # the same model, quantized here
    monkeypatch.setenv("LLMLAB_MODEL", str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelNotFoundError, match="No GGUF file at"):
        course_gguf()


def test_a_hub_id_that_cannot_be_fetched_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotFoundError, match="Cannot fetch Qwen/No-Such-Model-0.1B"):
        convert_to_gguf("Qwen/No-Such-Model-0.1B", "f16")


def test_a_hub_model_converted_before_is_not_fetched_again(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    converted = tmp_path / "gguf" / "No-Such-Model-0.1B-F16.gguf"
    converted.parent.mkdir()
    converted.write_bytes(b"GGUF")
    assert convert_to_gguf("Qwen/No-Such-Model-0.1B", "f16") == converted
