"""The bandwidth ceiling's parts: the bytes of weights one token reads, counted three ways that
must agree on the course's model, and the machine's read bandwidth."""

import math

import pytest
import torch

from llmlab.local.generation import LocalLLM
from llmlab.models import default_gguf, resolve_model
from llmlab.sizing.bandwidth import (
    bytes_read_per_token,
    ceiling_tokens_per_s,
    folder_bytes_per_token,
    gguf_bytes_per_token,
    measure_read_bandwidth,
    model_bytes_per_token,
)

PARAMETERS = 134_515_008  # SmolLM2-135M, its embedding table counted once (tied)


def test_a_tied_model_reads_every_weight_for_each_token():
    llm = LocalLLM(device="cpu", dtype=torch.float32)
    assert model_bytes_per_token(llm.model) == PARAMETERS * 4
    assert folder_bytes_per_token(resolve_model(), bytes_per_param=2) == PARAMETERS * 2


def test_the_gguf_file_is_read_whole_less_its_header():
    read = gguf_bytes_per_token(default_gguf())
    assert 0.95 * default_gguf().stat().st_size < read < default_gguf().stat().st_size


def test_an_untied_embedding_table_is_read_one_row_at_a_time():
    assert bytes_read_per_token(100, 30, tied=False) == 70
    assert bytes_read_per_token(100, 30, tied=True) == 100


def test_the_ceiling_is_bandwidth_over_bytes():
    assert ceiling_tokens_per_s(bytes_per_token=2e9, bandwidth_bytes_per_s=50e9) == 25
    bandwidth = measure_read_bandwidth(size_mib=64, repeats=2)
    assert bandwidth > 0 and math.isfinite(bandwidth)


def test_an_empty_buffer_is_refused():
    with pytest.raises(ValueError, match="at least 1 MiB"):
        measure_read_bandwidth(size_mib=0)
