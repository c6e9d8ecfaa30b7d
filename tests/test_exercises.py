"""The exercise checkers accept the reference answers and name each typical mistake.

Each broken answer below is one a student writes; the test asserts on the key phrase of the
message the student reads, so a message that stops saying what to fix fails here.
"""

from __future__ import annotations

import copy
import json
import math
from collections import Counter
from pathlib import Path
from typing import Literal

import pytest
import torch
from gguf import GGUFReader, LlamaFileType
from pydantic import BaseModel, ConfigDict, Field, create_model
from transformers import AutoTokenizer

from llmlab.errors import LLMLabError
from llmlab.exercises import (
    ExerciseError,
    chapter04,
    chapter08,
    check_chat_prompt,
    check_gguf_summary,
    check_left_padding,
    check_ollama_chat_body,
    check_replicas_needed,
    check_request_model,
    check_serving_metrics,
)
from llmlab.models import resolve_model
from llmlab.service.schemas import ChatRequest as ServiceChatRequest
from llmlab.sizing.capacity import ReplicaShape, plan_capacity
from solutions import chapter_exercises as answers

EXERCISES = str(Path(__file__).resolve().parents[1] / "llmlab" / "exercises")


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
        assert not any(f.startswith(EXERCISES) for f in _frame_files(error.__cause__.__traceback__))
        shown = "\n".join(error._render_traceback_())  # what Jupyter prints
    assert "in build_prompt" in shown and "KeyError: 'text'" in shown
    assert EXERCISES not in shown
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


# --- chapter 04: describe_gguf -----------------------------------------------------------------
# The mistakes run on a tiny llama file (a few KiB, like the course's: llama, Q4_1 mostly, some
# Q8_0 and F32) so that they take milliseconds; the checker adds its own qwen2 file.


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf"
    tensors = {"Q4_1": 5, "Q8_0": 1, "F32": 3}
    return str(chapter04._write_gguf(path, "llama", 8192, "MOSTLY_Q4_1", tensors))


def test_reference_describe_gguf_passes_on_the_course_file(capsys):
    check_gguf_summary(answers.describe_gguf)
    out = capsys.readouterr().out
    assert out == (
        "✓ describe_gguf describes SmolLM2-135M-Instruct.Q4_1.gguf and a qwen2 file as "
        "read_gguf does\n"
    )


def test_the_file_type_may_be_named_without_mostly_and_in_any_case(tiny_llama, capsys):
    def describe_gguf(path):
        summary = answers.describe_gguf(path)
        return {**summary, "quantization": summary["quantization"].removeprefix("MOSTLY_").lower()}

    check_gguf_summary(describe_gguf, tiny_llama)
    assert capsys.readouterr().out.startswith("✓ describe_gguf describes tiny-llama.gguf")


def gguf_answer(architecture, context_length, quantization, tensors):
    """A student answer built from ``reader``: each argument picks a value out of it."""

    def describe_gguf(path):
        reader = GGUFReader(path)
        return {
            "architecture": architecture(reader),
            "context_length": context_length(reader),
            "quantization": quantization(reader),
            "tensors": tensors(reader),
        }

    return describe_gguf


def field(key):
    return lambda reader: reader.fields[key]


def part(key):
    return lambda reader: reader.fields[key].parts[reader.fields[key].data[0]]


def value(key):
    return lambda reader: reader.fields[key].contents()


def arch_key(reader):
    return f"{reader.fields['general.architecture'].contents()}.context_length"


RIGHT_ARCH = value("general.architecture")
RIGHT_CONTEXT = lambda reader: reader.fields[arch_key(reader)].contents()  # noqa: E731
RIGHT_QUANT = lambda reader: LlamaFileType(reader.fields["general.file_type"].contents()).name  # noqa: E731
RIGHT_COUNT = lambda reader: len(reader.tensors)  # noqa: E731

#: What a student writes first: the fields themselves, a llama key, the number of fields.
FIRST_TRY = gguf_answer(
    field("general.architecture"),
    field("llama.context_length"),
    field("general.file_type"),
    lambda reader: len(reader.fields),
)


def most_common_type(reader):
    return Counter(tensor.tensor_type.name for tensor in reader.tensors).most_common(1)[0][0]


@pytest.mark.parametrize(
    ("describe_gguf", "message"),
    [
        (FIRST_TRY, r"tiny-llama.gguf: architecture is the GGUFReader field itself.*contents\(\)"),
        (
            gguf_answer(part("general.architecture"), RIGHT_CONTEXT, RIGHT_QUANT, RIGHT_COUNT),
            r"architecture is a numpy array .*the bytes of the text.*"
            r"bytes\(field.parts\[field.data\[0\]\]\).decode\(\)",
        ),
        (
            gguf_answer(
                lambda r: bytes(part("general.architecture")(r)),
                RIGHT_CONTEXT,
                RIGHT_QUANT,
                RIGHT_COUNT,
            ),
            r"architecture is bytes \(b'llama'\); decode it",
        ),
        (
            gguf_answer(RIGHT_ARCH, lambda r: part(arch_key(r))(r)[0], RIGHT_QUANT, RIGHT_COUNT),
            r"context_length is a numpy uint32 \(8192\); make it a Python int",
        ),
        (
            gguf_answer(RIGHT_ARCH, value("llama.context_length"), RIGHT_QUANT, RIGHT_COUNT),
            r"on a tiny qwen2 GGUF file .*raised KeyError.*under 'qwen2.context_length'",
        ),
        (
            gguf_answer(lambda r: "llama", RIGHT_CONTEXT, RIGHT_QUANT, RIGHT_COUNT),
            r"qwen2 GGUF.*architecture is 'llama', but this file's general.architecture is 'qwen2'",
        ),
        (
            gguf_answer(RIGHT_ARCH, lambda r: 8192, RIGHT_QUANT, RIGHT_COUNT),
            r"context_length is 8192, but this file's qwen2.context_length is 32768",
        ),
        (
            gguf_answer(RIGHT_ARCH, RIGHT_CONTEXT, value("general.file_type"), RIGHT_COUNT),
            r"quantization is 3, the number general.file_type stores; give its name: "
            r"gguf.LlamaFileType\(3\).name is 'MOSTLY_Q4_1'",
        ),
        (
            gguf_answer(RIGHT_ARCH, RIGHT_CONTEXT, most_common_type, RIGHT_COUNT),
            r"qwen2 GGUF.*quantization is 'Q4_K', the type 6 of the 10 tensors are stored in.*"
            r"'Q4_K_M'",
        ),
        (
            gguf_answer(RIGHT_ARCH, RIGHT_CONTEXT, RIGHT_QUANT, lambda r: len(r.fields)),
            r"tensors is 8: the number of metadata fields, len\(reader.fields\)\. It should be 9",
        ),
        (
            gguf_answer(
                RIGHT_ARCH,
                RIGHT_CONTEXT,
                RIGHT_QUANT,
                lambda r: sum(t.n_elements for t in r.tensors),
            ),
            r"tensors is 2304: the number of weights",
        ),
        (
            gguf_answer(RIGHT_ARCH, RIGHT_CONTEXT, RIGHT_QUANT, lambda r: r.tensors),
            r"tensors is the list of tensors itself; return how many: len\(reader.tensors\)",
        ),
        (
            lambda path: {k: v for k, v in answers.describe_gguf(path).items() if k != "tensors"},
            r"the dict lacks \['tensors'\]",
        ),
        (
            lambda path: tuple(answers.describe_gguf(path).values()),
            r"returned a tuple; return a dict",
        ),
    ],
)
def test_describe_gguf_mistakes_are_named(tiny_llama, describe_gguf, message):
    with pytest.raises(ExerciseError, match=message):
        check_gguf_summary(describe_gguf, tiny_llama)


# --- chapter 05: chat_body ---------------------------------------------------------------------


def test_reference_chat_body_passes(capsys):
    check_ollama_chat_body(answers.chat_body)
    assert capsys.readouterr().out == (
        "✓ chat_body builds /api/chat bodies that Ollama reads as asked, on 3 chats\n"
    )


def source_chapter(model, messages, *, temperature, max_tokens, stream=False):
    """The source chapter's chat: one text for /api/generate, the system message skipped."""
    prompt = "".join(f"{m['role']}: {m['content']}\n" for m in messages if m["role"] != "system")
    return {
        "model": model,
        "prompt": prompt + "assistant: ",
        "temperature": temperature,
        "max_tokens": max_tokens,
    }


def one_user_message(model, messages, *, temperature, max_tokens, stream=False):
    body = answers.chat_body(
        model, messages, temperature=temperature, max_tokens=max_tokens, stream=stream
    )
    text = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
    return {**body, "messages": [{"role": "user", "content": text}]}


def changed(**edits):
    """The reference answer with its body edited: ``key=None`` removes a field."""

    def chat_body(model, messages, *, temperature, max_tokens, stream=False):
        body = answers.chat_body(
            model, messages, temperature=temperature, max_tokens=max_tokens, stream=stream
        )
        for key, edit in edits.items():
            body.pop(key)
            if edit is not None:
                body.update(edit(body, messages, temperature, max_tokens, stream))
        return body

    return chat_body


def top_level(body, messages, temperature, max_tokens, stream):
    return {"max_tokens": max_tokens, "temperature": temperature}


def openai_names(body, messages, temperature, max_tokens, stream):
    return {"options": {"temperature": temperature, "max_tokens": max_tokens}}


def no_system(body, messages, temperature, max_tokens, stream):
    return {"messages": [m for m in messages if m["role"] != "system"]}


def always_false(body, messages, temperature, max_tokens, stream):
    return {"stream": False}


def if_temperature(body, messages, temperature, max_tokens, stream):
    options = {"num_predict": max_tokens}
    if temperature:
        options["temperature"] = temperature
    return {"options": options}


def streams_by_default(model, messages, *, temperature, max_tokens, stream=True):
    return answers.chat_body(
        model, messages, temperature=temperature, max_tokens=max_tokens, stream=stream
    )


@pytest.mark.parametrize(
    ("chat_body", "message"),
    [
        (
            source_chapter,
            r"system message and a user turn, not streamed \(source_chapter\('course-assistant', "
            r"messages, temperature=0.2, max_tokens=64, stream=False\)\): it flattens the "
            r"conversation into a \"prompt\" field.*Send the messages as they are",
        ),
        (one_user_message, r"flattens the conversation into one message of 'role: text' lines"),
        (
            changed(options=top_level),
            r"max_tokens, temperature are at the top level.*Put them in options.*num_predict",
        ),
        (changed(options=openai_names), r"options has \"max_tokens\"; Ollama calls the token"),
        (
            changed(messages=no_system),
            r"system message \('You are a helpful assistant.'\) is not among the messages",
        ),
        (changed(stream=None), r"\"stream\" is missing, and Ollama streams by default"),
        (
            changed(stream=always_false),
            r"streamed, at temperature 0.*\"stream\" is False but the caller asked for "
            r"stream=True",
        ),
        (
            changed(options=if_temperature),
            r"options lacks temperature.*temperature=0.0 is a value.*`if temperature:` drops it",
        ),
        (
            changed(stream=lambda *_: {"stream": False, "raw": True}),
            r"fields /api/chat does not know: \['raw'\]",
        ),
        (
            streams_by_default,
            r"stream left to its default.*\"stream\" is True but the caller asked for "
            r"stream=False",
        ),
        (
            lambda model, messages, **settings: json.dumps(
                answers.chat_body(model, messages, **settings)
            ),
            r"^your function, on .*returned a str, JSON text; return the dict",
        ),
    ],
)
def test_chat_body_mistakes_are_named(chat_body, message):
    with pytest.raises(ExerciseError, match=message):
        check_ollama_chat_body(chat_body)


# --- chapter 06: ChatRequest -------------------------------------------------------------------

ROLES = Literal["system", "user", "assistant"]


def request_model(
    *,
    extra="forbid",
    role=ROLES,
    messages=Field(min_length=1, max_length=64),  # noqa: B008
    max_tokens=Field(256, ge=1, le=1024),  # noqa: B008
    temperature=Field(0.7, ge=0, le=2),  # noqa: B008
):
    """A student's ChatRequest: the reference, but for the part given."""
    message = create_model("ChatMessage", __config__=ConfigDict(extra="forbid"), role=(role, ...),
                           content=(str, ...))  # fmt: skip
    return create_model(
        "ChatRequest",
        __config__=ConfigDict(extra=extra),
        messages=(list[message], messages),
        max_tokens=(int, max_tokens),
        temperature=(float, temperature),
    )


@pytest.mark.parametrize("model", [answers.ChatRequest, ServiceChatRequest, request_model()])
def test_the_reference_and_the_service_models_pass(model, capsys):
    check_request_model(model)
    assert capsys.readouterr().out == (
        "✓ ChatRequest accepts the 3 valid requests and refuses the 9 bad ones with 422, like "
        "the course's service\n"
    )


#: The source chapter's models, as llmlab/service/naive.py keeps them: no limits at all.
SOURCE_CHAPTER_REQUEST = create_model(
    "ChatRequest",
    messages=(list[create_model("ChatMessage", role=(str, ...), content=(str, ...))], ...),
    max_tokens=(int, 512),
    temperature=(float, 0.7),
)


class InstanceOfAModel(BaseModel):
    text: str = ""


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            SOURCE_CHAPTER_REQUEST,
            r"^ChatRequest, on a typo, max_token instead of max_tokens: sent \{\"messages\": "
            r".*\"max_token\": 5\}, it accepted it \(200\) and read it as .*\"max_tokens\": "
            r"512.*expected 422. Refuse unknown fields: model_config = ConfigDict\(extra=\"forbid",
        ),
        (request_model(extra="ignore"), r"on a typo.*ConfigDict\(extra=\"forbid\"\)"),
        (
            request_model(max_tokens=Field(256, ge=1)),
            r"on max_tokens 100000: .*accepted it \(200\).*le=MAX_TOKENS_LIMIT\) "
            r"\(MAX_TOKENS_LIMIT and MAX_MESSAGES come from llmlab.service.schemas",
        ),
        (request_model(max_tokens=Field(256, le=1024)), r"on max_tokens 0: .*ge=1"),
        (request_model(temperature=Field(0.7, le=2)), r"on temperature -1: .*ge=0, le=2"),
        (request_model(temperature=Field(0.7, ge=0)), r"on temperature 5: .*ge=0, le=2"),
        (
            request_model(temperature=Field(0.7, gt=0, le=2)),
            r"on temperature 0 \(greedy decoding\): .*refused it \(422: temperature: Input should "
            r"be greater than 0\); expected 200. .*ge=0, not gt=0",
        ),
        (request_model(role=str), r"on a message with the role 'robot': .*Literal\["),
        (
            request_model(role=Literal["user", "assistant"]),
            r"on a valid chat: .*refused it \(422: messages.0.role: .*expected 200",
        ),
        (request_model(messages=Field(max_length=64)), r"on no messages: .*min_length=1"),
        (
            request_model(messages=Field(min_length=1)),
            r'on 1000 messages: sent \{"messages": \[\{.*\}, "\.\.\. 998 more"\]\}, '
            r"it accepted it.*max_length=MAX_MESSAGES",
        ),
        (
            request_model(max_tokens=Field(ge=1, le=1024)),
            r"on a body with messages only: .*refused it \(422: max_tokens: Field required\)"
            r".*defaults",
        ),
        (InstanceOfAModel(), r"^you passed an instance of InstanceOfAModel; pass the class itself"),
        (dict, r"is a type, not a pydantic model: write `class ChatRequest\(BaseModel\):`"),
    ],
)
def test_request_model_mistakes_are_named(model, message):
    with pytest.raises(ExerciseError, match=message):
        check_request_model(model)


# --- chapter 08: replicas_needed ---------------------------------------------------------------


def test_reference_replicas_needed_passes(capsys):
    check_replicas_needed(answers.replicas_needed)
    assert capsys.readouterr().out == (
        "✓ replicas_needed agrees with the course's planner on 4 loads and refuses a budget no "
        "level meets\n"
    )


def fastest_level(levels, users, ttft_budget_s, tpot_budget_s):  # the notebook's first try
    best = max(levels, key=lambda level: level.output_tokens_per_s)
    return users // best.concurrency


def within(ttft: bool = True, tpot: bool = True, rounding=math.ceil):
    """An answer that checks the budgets it is told to, and rounds as it is told."""

    def replicas_needed(levels, users, ttft_budget_s, tpot_budget_s):
        ok = [
            level
            for level in levels
            if (not ttft or level.ttft_p90_s <= ttft_budget_s)
            and (not tpot or level.tpot_p50_s <= tpot_budget_s)
        ]
        if not ok:
            raise ValueError("no level meets the budget")
        return rounding(users / max(level.concurrency for level in ok))

    return replicas_needed


def returns_zero_when_nothing_fits(levels, users, ttft_budget_s, tpot_budget_s):
    ok = [lv for lv in levels if lv.ttft_p90_s <= ttft_budget_s and lv.tpot_p50_s <= tpot_budget_s]
    return math.ceil(users / max(lv.concurrency for lv in ok)) if ok else 0


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (fastest_level, r"on chapter 08's replica, 25 users.*returned 3, as if one replica carried "
                        r"8 requests: that is the level with the most tokens/s.*so 7 replicas"),
        (within(rounding=math.floor), r"25 users.*returned 6: 25 users / 4 per replica rounded "
                                      r"down, which leaves 1 of the 25 users without a replica"),
        (within(rounding=lambda x: int(x) + 1), r"on chapter 08's replica, 12 users.*returned 4: "
                                                r"12 users at 4 per replica fill 3 replicas"),
        (within(rounding=lambda x: x), r"25 users.*returned 6.25, a fraction of a replica"),
        (within(tpot=False), r"a GPU replica, 300 users, first token within 2 s.*returned 3, as if "
                             r"one replica carried 128 requests: only the first-token budget"),
        (within(ttft=False), r"first token within 0.5 s.*returned 5, as if one replica carried 64 "
                             r"requests: only the per-token budget"),
        (returns_zero_when_nothing_fits, r"on a budget no measured level meets.*returned 0.*raise "
                                         r"a ValueError"),
        (lambda *args: "7", r"returned a str; return the number of replicas, an int"),
        (lambda *args: 7.0, r"chapter 08's replica, 12 users.*returned 7.0, expected 3"),
    ],
)  # fmt: skip
def test_replicas_needed_mistakes_are_named(answer, message):
    with pytest.raises(ExerciseError, match=message):
        check_replicas_needed(answer)


def test_a_whole_number_of_any_numeric_type_is_accepted():
    numpy = pytest.importorskip("numpy")
    check_replicas_needed(lambda *args: numpy.int64(answers.replicas_needed(*args)))
    check_replicas_needed(lambda *args: float(answers.replicas_needed(*args)))


def test_replicas_needed_agrees_with_the_planner_on_every_case():
    for _, levels, users, ttft, tpot in chapter08.CASES:
        plan = plan_capacity(users, ReplicaShape.of_server(slots=1000), levels,
                             ttft_budget_s=ttft, tpot_budget_s=tpot)  # fmt: skip
        assert answers.replicas_needed(levels, users, ttft, tpot) == plan.replicas
