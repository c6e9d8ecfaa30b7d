"""The fuzzer's budget: a drawn request may ask for a few tokens at most, however it writes the
number, so that a fuzz run costs its requests and not the answers (seen: ``"max_tokens": 603.0``,
a float the service accepts as 603, made the service's fuzz test take 46 s instead of 6)."""

import pytest

from llmlab.http.fuzzing import MAX_ANSWER_TOKENS, short_answers


@pytest.mark.parametrize("asked", [603, 603.0, 1e300, float("inf")])
def test_a_large_answer_is_capped_whatever_its_number_type(asked):
    body = short_answers({"prompt": "Hi", "max_tokens": asked, "options": {"num_predict": asked}})
    assert body["max_tokens"] == MAX_ANSWER_TOKENS
    assert body["options"]["num_predict"] == MAX_ANSWER_TOKENS


@pytest.mark.parametrize("asked", [2, 2.5, -1.5, "603", True, None])
def test_what_is_not_a_large_number_is_left_for_the_server_to_judge(asked):
    assert short_answers({"prompt": "Hi", "max_tokens": asked})["max_tokens"] == asked


def test_a_request_that_names_no_length_gets_the_cap():
    assert short_answers({"messages": []})["max_tokens"] == MAX_ANSWER_TOKENS
    assert "max_tokens" not in short_answers({"model": "x"})  # nothing to generate


@pytest.mark.parametrize("asked", [-1, -1.0])
def test_an_endless_num_predict_is_capped_whatever_its_number_type(asked):
    assert short_answers({"num_predict": asked})["num_predict"] == MAX_ANSWER_TOKENS
