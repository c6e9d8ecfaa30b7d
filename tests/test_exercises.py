"""The exercise checkers accept the reference answers and name each typical mistake.

Each broken answer below is one a student writes; the test asserts on the key phrase of the
message the student reads, so a message that stops saying what to fix fails here.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from llmlab.errors import LLMLabError
from llmlab.exercises import (
    ExerciseError,
    check_chat_prompt,
    check_left_padding,
    check_serving_metrics,
)
from llmlab.models import resolve_model
from solutions import chapter_exercises as answers

EXERCISES_PY = str(Path(__file__).resolve().parents[1] / "llmlab" / "exercises.py")


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_model())


def test_exercise_error_is_a_course_error_and_an_assertion():
    assert issubclass(ExerciseError, LLMLabError)
    assert issubclass(ExerciseError, AssertionError)


# --- chapter 01: build_prompt ------------------------------------------------------------------


def test_reference_build_prompt_passes_with_the_default_tokenizer(capsys):
    check_chat_prompt(answers.build_prompt)
    out = capsys.readouterr().out
    assert out == "✓ build_prompt matches the model's chat template on 3 chats\n"


def hand_written(tokenizer, messages):
    turns = "".join(f"{m['role'].title()}: {m['content']}\n" for m in messages)
    return turns + "Assistant:"


def no_generation_prompt(tokenizer, messages):
    return tokenizer.apply_chat_template(messages, tokenize=False)


def drops_system(tokenizer, messages):
    chat = [m for m in messages if m["role"] != "system"]
    return tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)


def drops_assistant_turns(tokenizer, messages):
    chat = [m for m in messages if m["role"] != "assistant"]
    return tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)


def tokenized(tokenizer, messages):
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True)


def token_id_list(tokenizer, messages):
    return tokenized(tokenizer, messages)["input_ids"]


def forgets_return(tokenizer, messages):
    tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def extra_newline(tokenizer, messages):
    return answers.build_prompt(tokenizer, messages) + "\n"


@pytest.mark.parametrize(
    ("build_prompt", "message"),
    [
        (hand_written, r"one user turn: .*written by hand.*model's own chat template"),
        (no_generation_prompt, r"no generation prompt at the end: the model does not know"),
        (drops_system, r"system message \('You are a helpful assistant.'\) is missing"),
        (drops_assistant_turns, r"assistant message '12 times 12 is 144.' is missing"),
        (tokenized, r"token ids \(BatchEncoding\), not text. Pass tokenize=False"),
        (token_id_list, r"token ids \(list\), not text. Pass tokenize=False"),
        (forgets_return, r"returned None \(is a `return` missing\?\)"),
        (extra_newline, r"differs from the model's chat template at character \d+:\n  expected"),
    ],
)
def test_build_prompt_mistakes_are_named(tokenizer, build_prompt, message):
    with pytest.raises(ExerciseError, match=message):
        check_chat_prompt(build_prompt, tokenizer)


def test_a_student_function_that_raises_gets_the_case_and_its_own_traceback(tokenizer):
    def build_prompt(tokenizer, messages):
        return messages[0]["text"]

    with pytest.raises(ExerciseError, match="on a chat with one user turn: .*raised KeyError"):
        check_chat_prompt(build_prompt, tokenizer)
    # Shown above our message: the student's own frames, none of the checker's.
    try:
        check_chat_prompt(build_prompt, tokenizer)
    except ExerciseError as error:
        assert isinstance(error.__cause__, KeyError)
        assert EXERCISES_PY not in _frame_files(error.__cause__.__traceback__)
        shown = "\n".join(error._render_traceback_())  # what Jupyter prints
    assert "in build_prompt" in shown and "KeyError: 'text'" in shown
    assert EXERCISES_PY not in shown
    assert shown.splitlines()[-1].startswith("ExerciseError: build_prompt, on a chat with one")


def test_the_checker_cannot_be_fooled_by_a_student_that_edits_the_messages(tokenizer):
    def build_prompt(tokenizer, messages):
        messages.clear()
        return ""

    with pytest.raises(ExerciseError, match="chat template"):
        check_chat_prompt(build_prompt, tokenizer)


def test_chats_a_model_template_refuses_are_skipped_not_blamed_on_the_student(tokenizer, capsys):
    strict = copy.deepcopy(tokenizer)  # like Gemma's: no system role
    strict.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )
    check_chat_prompt(answers.build_prompt, strict)
    assert "on 2 chats" in capsys.readouterr().out


def _frame_files(traceback) -> list[str]:
    files = []
    while traceback is not None:
        files.append(traceback.tb_frame.f_code.co_filename)
        traceback = traceback.tb_next
    return files


# --- chapter 02: pad_batch ---------------------------------------------------------------------


def test_reference_pad_batch_passes(capsys):
    check_left_padding(answers.pad_batch)
    assert capsys.readouterr().out.startswith("✓ pad_batch pads on the left")


def pads_right(sequences, pad_id):
    width = max(map(len, sequences))
    ids = torch.tensor([seq + [pad_id] * (width - len(seq)) for seq in sequences])
    mask = torch.tensor([[1] * len(seq) + [0] * (width - len(seq)) for seq in sequences])
    return ids, mask


def pads_to_max_length(sequences, pad_id, max_length=8):
    ids = torch.tensor([[pad_id] * (max_length - len(seq)) + seq for seq in sequences])
    mask = torch.tensor([[0] * (max_length - len(seq)) + [1] * len(seq) for seq in sequences])
    return ids, mask


def inverted_mask(sequences, pad_id):
    ids, mask = answers.pad_batch(sequences, pad_id)
    return ids, 1 - mask


def no_mask(sequences, pad_id):
    return answers.pad_batch(sequences, pad_id)[0], None


def mask_of_ones(sequences, pad_id):
    ids, mask = answers.pad_batch(sequences, pad_id)
    return ids, torch.ones_like(mask)


def mask_from_pad_id(sequences, pad_id):
    ids, _ = answers.pad_batch(sequences, pad_id)
    return ids, (ids != pad_id).long()


def lists(sequences, pad_id):
    ids, mask = answers.pad_batch(sequences, pad_id)
    return ids.tolist(), mask.tolist()


def float_tensors(sequences, pad_id):
    width = max(map(len, sequences))
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.float32)
    mask = torch.zeros(len(sequences), width)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq) :] = torch.tensor(seq)
        mask[row, width - len(seq) :] = 1
    return ids, mask


def a_dict(sequences, pad_id):
    ids, mask = answers.pad_batch(sequences, pad_id)
    return {"input_ids": ids, "attention_mask": mask}


def pads_with_zero(sequences, pad_id):
    return answers.pad_batch(sequences, 0)


@pytest.mark.parametrize(
    ("pad_batch", "message"),
    [
        (pads_right, r"pads on the right. A model generates after the last position"),
        (
            pads_to_max_length,
            r"has 8 positions but the longest prompt .* not to a fixed max_length",
        ),
        (inverted_mask, r"attention mask is inverted"),
        (no_mask, r"attention mask is missing"),
        (mask_of_ones, r"attention mask is all ones"),
        (mask_from_pad_id, r"hold the pad id.*the prompts themselves contain that id"),
        (lists, r"input_ids is a Python list; return tensors"),
        (float_tensors, r"input_ids has dtype torch.float32: make it torch.long"),
        (a_dict, r"returned a dict; return a tuple"),
        (pads_with_zero, r"row 0 of input_ids is \[1, 520, 2, 198, 7\]|row 1 of input_ids is"),
    ],
)
def test_pad_batch_mistakes_are_named(pad_batch, message):
    with pytest.raises(ExerciseError, match=message):
        check_left_padding(pad_batch)


def test_a_pad_batch_that_raises_names_the_batch():
    def pad_batch(sequences, pad_id):
        return torch.tensor(sequences), None  # ragged rows: ValueError

    with pytest.raises(ExerciseError, match=r"three prompts of different lengths .*ValueError"):
        check_left_padding(pad_batch)


# --- chapter 03: metrics -----------------------------------------------------------------------


def test_reference_metrics_passes(capsys):
    check_serving_metrics(answers.metrics)
    assert capsys.readouterr().out.startswith("✓ metrics matches vLLM's serving-benchmark")


def with_tpot(tpot):
    """A student answer whose TTFT and E2E are right and whose TPOT is ``tpot(...)``."""

    def metrics(sent_s, chunk_times_s, output_tokens):
        ttft, e2e = chunk_times_s[0] - sent_s, chunk_times_s[-1] - sent_s
        return {
            "ttft_s": ttft,
            "tpot_s": tpot(ttft, e2e, chunk_times_s, output_tokens),
            "e2e_s": e2e,
        }

    return metrics


def with_times(ttft, e2e):
    """A student answer whose TPOT follows from its own (wrong) TTFT or E2E."""

    def metrics(sent_s, chunk_times_s, output_tokens):
        t, e = ttft(sent_s, chunk_times_s), e2e(sent_s, chunk_times_s)
        return {"ttft_s": t, "tpot_s": (e - t) / (output_tokens - 1), "e2e_s": e}

    return metrics


def right_ttft(sent, times):
    return times[0] - sent


def right_e2e(sent, times):
    return times[-1] - sent


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        (with_tpot(lambda t, e, c, n: e / n), r"5 tokens in 5 chunks.*the first included"),
        (with_tpot(lambda t, e, c, n: (e - t) / n), r"divides by output_tokens\. The first"),
        (with_tpot(lambda t, e, c, n: e / (n - 1)), r"does not subtract TTFT"),
        (
            with_tpot(lambda t, e, c, n: (e - t) / (len(c) - 1) if len(c) > 1 else None),
            r"9 tokens in 3 chunks.*counts chunks \(3\) instead of tokens \(9\)",
        ),
        (
            with_tpot(lambda t, e, c, n: (e - t) / (n - 1) if n > 1 else 0.0),
            r"one-token answer.*undefined: return None",
        ),
        (
            with_tpot(lambda t, e, c, n: (e - t) / (n - 1)),
            r"one-token answer.*raised ZeroDivisionError.*return None for tpot_s",
        ),
        (with_times(right_ttft, lambda s, c: c[0] - s), r"e2e_s stops at the first chunk"),
        (with_times(right_ttft, lambda s, c: c[-1] - c[0]), r"e2e_s starts at the first chunk"),
        (
            with_times(lambda s, c: c[1] - c[0], right_e2e),
            r"gap from the first chunk to the second",
        ),
        (with_times(lambda s, c: c[0], right_e2e), r"ttft_s is a clock reading"),
        (lambda s, c, n: {"ttft_s": c[0] - s, "e2e_s": c[-1] - s}, r"lacks \['tpot_s'\]"),
        (lambda s, c, n: (c[0] - s, None, c[-1] - s), r"returned a tuple; return a dict"),
    ],
)
def test_metrics_mistakes_are_named(metrics, message):
    with pytest.raises(ExerciseError, match=message):
        check_serving_metrics(metrics)


def test_a_lambda_is_called_your_function():
    with pytest.raises(
        ExerciseError, match=r"^your function, on an answer of 5 tokens in 5 chunks \(sent_s=1000.0"
    ):
        check_serving_metrics(lambda s, c, n: None)
