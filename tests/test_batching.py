"""Batched generation: the same answers as one at a time, in input order, with clear errors."""

import pytest

from llmlab.local.batching import LeftPaddingCollator, batch_order, generate_batch, padding_waste
from llmlab.local.generation import LocalLLM
from tests.conftest import ask

QUESTIONS = [
    "What is the capital of France?",
    "Name three primary colors.",
    "What is 12 times 12?",
    "How many legs does a spider have?",
    "Why is the sky blue? Answer in one sentence, please, for a child.",
    "Who wrote Romeo and Juliet?",
]
CHATS = [ask(question) for question in QUESTIONS]


@pytest.fixture(scope="module")
def one_at_a_time(llm: LocalLLM):
    return [llm.chat(chat, temperature=0, max_new_tokens=24) for chat in CHATS]


@pytest.mark.parametrize("sort_by_length", [False, True])
@pytest.mark.parametrize("batch_size", [4, 6])
def test_batched_greedy_answers_equal_one_at_a_time(
    llm: LocalLLM, one_at_a_time, batch_size, sort_by_length
):
    batched = generate_batch(
        llm,
        CHATS,
        temperature=0,
        max_new_tokens=24,
        batch_size=batch_size,
        sort_by_length=sort_by_length,
        progress=False,
    )
    assert [r.text for r in batched] == [r.text for r in one_at_a_time]
    assert [r.usage for r in batched] == [r.usage for r in one_at_a_time]
    assert [r.finish_reason for r in batched] == [r.finish_reason for r in one_at_a_time]


def test_right_padding_breaks_the_short_rows(llm: LocalLLM, one_at_a_time):
    batched = generate_batch(
        llm,
        CHATS,
        temperature=0,
        max_new_tokens=24,
        batch_size=6,
        padding_side="right",
        progress=False,
    )
    wrong = [b.text != s.text for b, s in zip(batched, one_at_a_time, strict=True)]
    assert sum(wrong) >= 3


def test_plain_prompts_are_batched_without_a_template(llm: LocalLLM):
    prompts = ["The capital of France is", "One, two, three, four,"]
    batched = generate_batch(llm, prompts, temperature=0, max_new_tokens=6, progress=False)
    assert [r.text for r in batched] == [
        llm.generate(p, temperature=0, max_new_tokens=6).text for p in prompts
    ]


def test_ignore_eos_forces_equal_work(llm: LocalLLM):
    results = generate_batch(
        llm, CHATS[:3], temperature=0, max_new_tokens=40, ignore_eos=True, progress=False
    )
    assert [r.usage.completion_tokens for r in results] == [40, 40, 40]
    assert {r.finish_reason for r in results} == {"length"}


def test_collator_pads_each_batch_to_its_longest_prompt_on_the_left():
    batch = LeftPaddingCollator(pad_token_id=0)([(3, [5, 6, 7]), (8, [9])])
    assert batch["index"].tolist() == [3, 8]
    assert batch["input_ids"].tolist() == [[5, 6, 7], [0, 0, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]


def test_sorting_groups_similar_lengths_and_cuts_padding():
    lengths = [10, 200, 12, 190, 11, 205, 9, 180]
    assert batch_order(lengths, 4, sort_by_length=True) == [[5, 1, 3, 7], [2, 4, 0, 6]]
    assert batch_order(lengths, 4, sort_by_length=False) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    unsorted = padding_waste(lengths, 4, sort_by_length=False)
    assert unsorted > 0.4
    assert padding_waste(lengths, 4, sort_by_length=True) < unsorted / 5


@pytest.mark.parametrize("prompts", [[], "one prompt"])
def test_no_prompts_is_a_clear_error(llm: LocalLLM, prompts):
    with pytest.raises(ValueError, match="non-empty list"):
        generate_batch(llm, prompts)


@pytest.mark.parametrize("batch_size", [0, -2, 1.5, True])
def test_an_invalid_batch_size_is_a_clear_error(llm: LocalLLM, batch_size):
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        generate_batch(llm, CHATS, batch_size=batch_size)
