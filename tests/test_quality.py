"""Quantization's quality as llama-perplexity measures it: the parser on llama.cpp's own output,
and real runs on the course's text."""

from dataclasses import replace

import pytest

from llmlab.llamacpp.build import find_tools
from llmlab.llamacpp.gguf import convert_to_gguf, quantize
from llmlab.llamacpp.quality import PerplexityError, measure_quality, parse_quality
from llmlab.models import default_gguf, resolve_model

#: The statistics llama-perplexity (llama.cpp 0.3.36's sources) printed for Q4_K_M, shortened.
OUTPUT = """
====== Perplexity statistics ======
Mean PPL(Q)                   :  15.792602 ±   1.024758
Mean PPL(base)                :  14.562661 ±   0.927597
Cor(ln(PPL(Q)), ln(PPL(base))):  99.01%
Mean ln(PPL(Q)/PPL(base))     :   0.081081 ±   0.009107
Mean PPL(Q)/PPL(base)         :   1.084459 ±   0.009876

====== KL divergence statistics ======
Mean    KLD:   0.060347 ±   0.001597
Maximum KLD:   0.893442

====== Token probability statistics ======
Mean    Δp: -0.846 ± 0.148 %
Same top p: 87.059 ± 0.795 %
"""


def test_the_figures_are_read_from_llama_perplexitys_output():
    quality = parse_quality(OUTPUT)
    assert quality.perplexity == pytest.approx(15.792602)
    assert quality.perplexity_error == pytest.approx(1.024758)
    assert quality.perplexity_ratio == pytest.approx(1.084459)
    assert quality.mean_kld == pytest.approx(0.060347)
    assert quality.same_top == pytest.approx(0.87059)
    assert quality.row()["same top token (%)"] == pytest.approx(87.059)


def test_output_without_figures_is_an_error_that_quotes_it():
    with pytest.raises(PerplexityError, match=r"(?s)printed no 'Mean PPL\(Q\)'.*out of memory"):
        parse_quality("llama_model_load: error: out of memory")


def test_a_missing_tool_is_explained(tmp_path):
    tools = replace(find_tools(), perplexity=None)
    with pytest.raises(PerplexityError, match="No llama-perplexity beside"):
        measure_quality(tools, default_gguf(), {"Q4_1": default_gguf()}, progress=False)


def test_requantizing_a_4_bit_model_costs_more_than_writing_it_in_16_bits():
    """Chapter 04's lesson, measured: the F16 file made from the 4-bit model is the same model
    (its own distributions, exactly), while quantizing it again moves them further away."""
    f16 = convert_to_gguf(resolve_model(), "f16")
    models = {"F16": f16, "Q4_1": default_gguf(), "Q4_K_M": quantize(f16, "Q4_K_M")}
    quality = measure_quality(find_tools(), f16, models, chunks=2, progress=False)
    assert quality["F16"].same_top == 1.0 and quality["F16"].mean_kld == pytest.approx(0, abs=1e-6)
    assert 0 < quality["Q4_1"].mean_kld < quality["Q4_K_M"].mean_kld
    assert quality["Q4_K_M"].perplexity_ratio > quality["Q4_1"].perplexity_ratio
