"""Modelfiles: what Ollama's parser accepts, what it refuses, and the message for each."""

from pathlib import Path

import pytest

from llmlab.errors import LLMLabError
from llmlab.ollama.modelfile import (
    Modelfile,
    ModelfileError,
    parse_modelfile,
    render_template,
)

CHATML = (
    "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n{{ .Response }}<|im_end|>\n"
)


@pytest.fixture
def gguf(tmp_path: Path) -> Path:
    path = tmp_path / "models" / "tiny.gguf"
    path.parent.mkdir()
    path.write_bytes(b"GGUF")
    return path


def test_a_full_modelfile(gguf: Path):
    text = f'''# the assistant of chapter 05
from ./models/tiny.gguf
SYSTEM """You are a helpful assistant.
Answer in one sentence."""
parameter temperature 0.2
PARAMETER top_k 50
PARAMETER stop <|im_end|>
PARAMETER stop "<|im_start|>"
PARAMETER num_ctx 4096
MESSAGE user What is the capital of France?
MESSAGE assistant """The capital of France is Paris."""
TEMPLATE """{CHATML}"""
LICENSE Apache-2.0
'''
    modelfile = parse_modelfile(text, base_dir=gguf.parent.parent)
    assert modelfile == Modelfile(
        from_=str(gguf),
        system="You are a helpful assistant.\nAnswer in one sentence.",
        template=CHATML,
        parameters={
            "temperature": 0.2,
            "top_k": 50,
            "stop": ["<|im_end|>", "<|im_start|>"],
            "num_ctx": 4096,
        },  # fmt: skip
        messages=[
            {"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "The capital of France is Paris."},
        ],
        license=["Apache-2.0"],
    )
    assert modelfile.from_gguf
    assert parse_modelfile(modelfile.render()) == modelfile  # rendering reads back the same


def test_the_source_chapters_modelfile_builds_on_a_model_name():
    modelfile = parse_modelfile(
        'FROM qwen2:7b\n\nSYSTEM """你是一个专业的AI助手。"""\n'
        "PARAMETER temperature 0.7\nPARAMETER top_k 50\n"
    )
    assert (modelfile.from_, modelfile.system) == ("qwen2:7b", "你是一个专业的AI助手。")
    assert modelfile.parameters == {"temperature": 0.7, "top_k": 50}
    assert not modelfile.from_gguf


def test_values_keep_what_is_inside_triple_quotes():
    modelfile = parse_modelfile('FROM m\nSYSTEM """\n  # not a comment\n"quoted"\n"""\n')
    assert modelfile.system == '\n  # not a comment\n"quoted"\n'


def test_render_quotes_parameters_that_need_it():
    modelfile = Modelfile(from_="m", parameters={"stop": ["User:", " end "], "seed": 3})
    assert modelfile.render() == 'FROM m\nPARAMETER stop User:\nPARAMETER stop """ end """\n' \
        "PARAMETER seed 3\n"  # fmt: skip
    assert parse_modelfile(modelfile.render()) == modelfile


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM m\nFORM m", "line 2: unknown instruction 'FORM'; a Modelfile has FROM, SYSTEM, "
         "TEMPLATE, PARAMETER, MESSAGE, LICENSE and ADAPTER"),
        ("SYSTEM hi", "the Modelfile has no FROM line; start it with FROM and a model name or "
         "the path of a .gguf file"),
        ("FROM m\n\nPARAMETER temperature hot", "line 3: PARAMETER temperature needs a number, "
         "not 'hot'"),
        ("FROM m\nPARAMETER top_k 2.5", "line 2: PARAMETER top_k needs a whole number, not '2.5'"),
        ("FROM m\nPARAMETER temprature 1", "line 2: unknown PARAMETER 'temprature'; did you mean "
         "'temperature'? this server knows min_p, num_ctx, num_predict, repeat_last_n, "
         "repeat_penalty, seed, stop, temperature, top_k, top_p"),
        ("FROM m\nPARAMETER mirostat 1", "line 2: unknown PARAMETER 'mirostat'; this server knows "
         "min_p, num_ctx, num_predict, repeat_last_n, repeat_penalty, seed, stop, temperature, "
         "top_k, top_p"),
        ("FROM m\nPARAMETER", "line 2: PARAMETER needs a name and a value"),
        ("FROM m\nPARAMETER seed", "line 2: PARAMETER seed needs a value"),
        ("FROM m\nSYSTEM", "line 2: SYSTEM needs a value"),
        ('FROM m\nSYSTEM """one\ntwo', 'line 2: the """ opened here is never closed'),
        ('FROM m\nSYSTEM """one\ntwo""" three', "line 3: unexpected text after the closing "
         "\"\"\": ' three'"),
        ("FROM m\nMESSAGE bot hello", "line 2: MESSAGE role must be system, user or assistant, "
         "not 'bot'"),
        ("FROM m\nADAPTER ./lora.gguf", "line 2: ADAPTER (a LoRA adapter) is not supported by "
         "this course's server; merge the adapter into the model and convert that to GGUF "
         "(chapter 04)"),
        ("FROM m\nFROM n", "line 2: a second FROM; a Modelfile has one"),
        ("FROM m\nTEMPLATE {{ range .Messages }}{{ .Content }}{{ end }}", "line 2: TEMPLATE uses "
         "{{ range .Messages }}, which this server cannot render; it renders {{ .System }}, "
         "{{ .Prompt }}, {{ .Response }} and {{ if ... }}...{{ end }}. Leave TEMPLATE out to use "
         "the chat template in the GGUF file"),
        ("FROM m\nTEMPLATE {{ if .System }}{{ .System }}", "line 2: TEMPLATE has an "
         "{{ if ... }} without its {{ end }}"),
    ],
)  # fmt: skip
def test_mistakes_are_named_with_their_line(text: str, message: str):
    with pytest.raises(ModelfileError) as caught:
        parse_modelfile(text)
    assert str(caught.value) == message
    assert isinstance(caught.value, LLMLabError) and isinstance(caught.value, ValueError)


def test_a_missing_gguf_file_is_named_with_the_path_looked_at(tmp_path: Path):
    with pytest.raises(ModelfileError, match=r"line 1: FROM \./gone\.gguf: there is no file at "):
        parse_modelfile("FROM ./gone.gguf", base_dir=tmp_path)


def test_a_template_makes_the_prompt_ollama_would():
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert render_template(CHATML, chat) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nCapital of France?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_a_template_trims_where_its_tags_say():
    template = "{{- if .System }}[{{ .System }}]\n{{- end }}\n  Q: {{ .Prompt -}}  \nA:"
    assert render_template(template, [{"role": "user", "content": "2+2?"}]) == "\n  Q: 2+2?A:"


def test_create_args_are_what_the_ollama_client_takes(gguf: Path):
    modelfile = parse_modelfile(f"FROM {gguf}\nSYSTEM Be brief.\nPARAMETER seed 7")
    assert modelfile.create_args("sha256:" + "0" * 64) == {
        "files": {"tiny.gguf": "sha256:" + "0" * 64},
        "system": "Be brief.",
        "parameters": {"seed": 7},
    }
    assert parse_modelfile("FROM qwen2:7b").create_args() == {"from_": "qwen2:7b"}
