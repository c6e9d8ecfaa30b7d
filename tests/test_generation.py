"""The Transformers wrapper, on the real default model."""

import threading

import pytest
import torch

from llmlab.local.generation import LocalLLM, pick_dtype
from llmlab.local.sampling import SamplingParams
from llmlab.sizing.hardware import Hardware
from tests.conftest import SYSTEM, ask

CAPITAL = ask("What is the capital of France?")


def test_a_greedy_chat_ends_its_turn_by_itself(llm: LocalLLM):
    # What the 135M model says depends on the CPU's arithmetic; that it answers and stops does not.
    result = llm.chat(CAPITAL, temperature=0, max_new_tokens=32)
    assert result.text.strip()
    assert result.finish_reason == "stop"


def test_usage_counts_the_tokens_the_model_saw_and_wrote(llm: LocalLLM):
    result = llm.chat(CAPITAL, temperature=0, max_new_tokens=32)
    prompt_ids = llm.tokenizer(llm.apply_chat_template(CAPITAL), add_special_tokens=False)
    assert result.usage.prompt_tokens == len(prompt_ids["input_ids"])
    written = llm.tokenizer(result.text, add_special_tokens=False)["input_ids"]
    assert result.usage.completion_tokens == len(written) + 1  # + the end-of-turn token
    assert result.usage.total_tokens == result.usage.prompt_tokens + len(written) + 1


def test_the_chat_template_keeps_the_system_message(llm: LocalLLM):
    text = llm.apply_chat_template(CAPITAL)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")
    assert text.endswith("<|im_start|>assistant\n")


def test_greedy_decoding_is_deterministic(llm: LocalLLM):
    first = llm.chat(ask("Name three colors."), temperature=0, max_new_tokens=24)
    assert llm.chat(ask("Name three colors."), temperature=0, max_new_tokens=24) == first


def test_a_seed_makes_sampling_repeatable(llm: LocalLLM):
    params = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=24, seed=7)
    assert llm.chat(ask("Tell me a story."), params) == llm.chat(ask("Tell me a story."), params)


def test_a_cut_short_answer_says_length(llm: LocalLLM):
    result = llm.chat(ask("Explain gravity in detail."), temperature=0, max_new_tokens=5)
    assert result.finish_reason == "length"
    assert result.usage.completion_tokens == 5


def test_plain_generate_continues_the_text(llm: LocalLLM):
    result = llm.generate("The capital of France is", temperature=0, max_new_tokens=3)
    assert result.text.strip() and result.finish_reason == "length"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (5, 3)


def test_streaming_yields_the_same_answer_piece_by_piece(llm: LocalLLM):
    whole = llm.chat(CAPITAL, temperature=0, max_new_tokens=32)
    chunks = list(llm.chat(CAPITAL, temperature=0, max_new_tokens=32, stream=True))
    assert len(chunks) > 3
    assert "".join(chunk.text for chunk in chunks) == whole.text
    assert (chunks[-1].usage, chunks[-1].finish_reason) == (whole.usage, whole.finish_reason)


def test_leaving_a_stream_early_stops_the_model(llm: LocalLLM):
    before = threading.active_count()
    stream = llm.chat(ask("Write a long essay about oceans."), max_new_tokens=500, stream=True)
    next(stream)
    stream.close()  # what a web client's disconnect does to a streaming response
    assert threading.active_count() == before, "the generation thread is still running"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"temperature": -0.1}, "temperature must be in"),
        ({"top_p": 0}, "top_p must be in"),
        ({"top_k": -1}, "top_k must be an int"),
        ({"max_new_tokens": 0}, "max_new_tokens must be a positive int"),
        ({"repetition_penalty": 0}, "repetition_penalty must be > 0"),
    ],
)
def test_bad_sampling_parameters_fail_before_generating(llm: LocalLLM, setting, message):
    with pytest.raises(ValueError, match=message):
        llm.chat(CAPITAL, **setting)


def test_a_misspelled_parameter_is_named(llm: LocalLLM):
    with pytest.raises(TypeError, match="max_tokens"):
        llm.chat(CAPITAL, max_tokens=10)


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ([], "non-empty list"),
        ("What is AI?", "non-empty list"),
        ([{"role": "robot", "content": "hi"}], "role 'robot'"),
        ([{"role": "user", "text": "hi"}], "keys 'role' and 'content'"),
        ([SYSTEM, {"role": "assistant", "content": "Hi"}], "end with a user message"),
    ],
)
def test_bad_messages_are_explained(llm: LocalLLM, messages, message):
    with pytest.raises(ValueError, match=message):
        llm.chat(messages)


def test_the_cpu_gets_float32_not_float16(llm: LocalLLM):
    assert pick_dtype(Hardware("cpu", "CPU", 16, 8, 2)) == torch.float32
    if llm.device == "cpu":
        assert llm.model.dtype == torch.float32
