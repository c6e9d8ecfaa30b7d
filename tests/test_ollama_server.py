"""The course's Ollama-compatible server, run as a real process on real llama-servers and driven
with the official ``ollama`` client (the yardstick), ``openai``, and the course's own client."""

import json
import math
import shutil
import time
from collections.abc import Iterator

import httpx
import ollama
import openai
import pytest

from llmlab.models import default_gguf
from llmlab.ollama import (
    OllamaClient,
    OllamaConnectionError,
    OllamaError,
    find_ollama,
    ollama_host,
    ollama_server,
    parse_modelfile,
)
from llmlab.ollama.options import keep_alive_seconds, llama_options
from llmlab.ollama.store import ModelStore, StoreError, human_count, normalize_name
from llmlab.prompts import SYSTEM_PROMPT, chat
from llmlab.servers import Server, free_port
from tests.conftest import llama_servers

pytestmark = pytest.mark.server

NAME = "course-assistant"
MODELFILE = '''FROM {gguf}
SYSTEM """You are a helpful assistant. You answer questions about geography in one short,
friendly sentence, and you never make anything up."""
PARAMETER temperature 0
PARAMETER num_predict 48
'''
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
CAPITAL = chat("What is the capital of France?")  # with the system prompt "You are a helpful..."
CAPITAL_TOKENS = 27  # that chat through SmolLM2's template (as chapter 06's service counts it)
CHATML = (
    "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n{{ .Response }}<|im_end|>\n"
)
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"  # the model goes on counting for as long as it may


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    store = tmp_path_factory.mktemp("ollama-store")
    # One thread per llama-server: on 2 busy cores, two threads that wait for each other at
    # every step can be 10 times slower.
    with ollama_server(store_dir=store, threads=1, keep_alive_s=120) as server:
        yield server


@pytest.fixture(scope="module")
def client(server: Server) -> ollama.Client:
    return ollama.Client(host=server.base_url, timeout=120)


@pytest.fixture(scope="module")
def assistant(client: ollama.Client) -> str:
    """The chapter's model, made as the ``ollama`` client makes one from a Modelfile."""
    modelfile = parse_modelfile(MODELFILE.format(gguf=default_gguf()))
    statuses = client.create(
        model=NAME, from_=modelfile.from_, system=modelfile.system,
        parameters=modelfile.parameters, stream=True,
    )  # fmt: skip
    assert [s.status for s in statuses][-1] == "success"
    return NAME


def test_it_answers_like_ollama_but_is_not_taken_for_it(server: Server):
    assert httpx.get(server.url("/")).text == "Ollama is running"
    assert httpx.get(server.url("/api/version")).json()["version"].endswith("-llmlab")
    assert find_ollama(server.base_url) is None  # find_ollama looks for the real one


def test_the_model_is_listed_with_ollamas_details(client: ollama.Client, assistant: str):
    listed = {model.model: model for model in client.list().models}
    model = listed[f"{assistant}:latest"]
    assert model.size == default_gguf().stat().st_size
    assert len(model.digest) == 64
    details = model.details
    assert (details.format, details.family, details.parameter_size, details.quantization_level) \
        == ("gguf", "llama", "134.52M", "Q4_1")  # fmt: skip


def test_show_gives_modelfile_parameters_template_and_details(client: ollama.Client, assistant):
    shown = client.show(assistant)
    assert shown.parameters.split() == ["temperature", "0.0", "num_predict", "48"]
    assert f"FROM {default_gguf()}" in shown.modelfile
    assert 'SYSTEM """You are a helpful assistant. You answer' in shown.modelfile
    assert parse_modelfile(shown.modelfile).parameters == {"temperature": 0, "num_predict": 48}
    assert "<|im_start|>" in shown.template  # the chat template inside the GGUF file
    assert shown.details.quantization_level == "Q4_1"
    assert shown.modelinfo["general.architecture"] == "llama"
    assert shown.modelinfo["tokenizer.ggml.tokens"] is None  # long arrays left out, as Ollama
    assert shown.capabilities == ["completion"]


def test_chat_answers_through_the_template_with_ollamas_timings(client: ollama.Client, assistant):
    answer = client.chat(model=assistant, messages=CAPITAL)
    assert answer.message.content.strip()
    assert (answer.done, answer.done_reason, answer.message.role) == (True, "stop", "assistant")
    assert answer.prompt_eval_count == CAPITAL_TOKENS
    assert 0 < answer.eval_count < 48
    for duration in ("total_duration", "prompt_eval_duration", "eval_duration"):
        assert answer[duration] > 0  # nanoseconds
    assert answer.total_duration > answer.eval_duration
    assert answer.created_at.endswith("Z")


def test_chat_streams_pieces_that_add_up_to_the_answer(client: ollama.Client, assistant: str):
    whole = client.chat(model=assistant, messages=CAPITAL).message.content
    pieces = list(client.chat(model=assistant, messages=CAPITAL, stream=True))
    assert len(pieces) > 3
    assert [piece.done for piece in pieces] == [False] * (len(pieces) - 1) + [True]
    assert "".join(piece.message.content for piece in pieces) == whole  # temperature 0
    assert pieces[-1].eval_count > 0 and pieces[-1].done_reason == "stop"


def test_the_modelfile_system_prompt_is_used_when_the_chat_has_none(client, assistant):
    own = client.chat(model=assistant, messages=QUESTION)
    assert own.prompt_eval_count > CAPITAL_TOKENS + 15  # the Modelfile's longer SYSTEM is there
    generated = client.generate(
        model=assistant, prompt=QUESTION[0]["content"], system=SYSTEM_PROMPT
    )
    assert generated.prompt_eval_count == CAPITAL_TOKENS  # a request's system replaces it


def test_options_override_the_modelfile_parameters(client: ollama.Client, assistant: str):
    short = client.chat(model=assistant, messages=CAPITAL, options={"num_predict": 3})
    assert (short.eval_count, short.done_reason) == (3, "length")
    whole = client.chat(model=assistant, messages=CAPITAL).message.content
    word = whole.split()[1]  # a word this model writes on this CPU, whatever it says
    stopped = client.chat(model=assistant, messages=CAPITAL, options={"stop": [word]})
    assert word not in stopped.message.content and stopped.done_reason == "stop"
    assert whole.startswith(stopped.message.content)


def test_a_seed_makes_sampling_repeatable(client: ollama.Client, assistant: str):
    options = {"temperature": 1.5, "seed": 1234, "num_predict": 24}
    story = [{"role": "user", "content": "Tell me a story about a dragon."}]
    first, second = (client.chat(model=assistant, messages=story, options=options) for _ in "ab")
    assert first.message.content == second.message.content
    assert first.eval_count == 24


def test_generate_templates_the_prompt_unless_raw(client: ollama.Client, assistant: str):
    answer = client.generate(model=assistant, prompt="What is the capital of France?")
    assert answer.response.strip() and answer.done
    assert answer.prompt_eval_count > 15  # the Modelfile's SYSTEM and the chat template
    raw = client.generate(
        model=assistant, prompt="The capital of France is", raw=True, options={"num_predict": 4}
    )
    assert (raw.prompt_eval_count, raw.eval_count) == (5, 4)  # the five words, as they are


def test_a_template_and_messages_from_a_modelfile(server: Server, client, assistant: str):
    client.create(model="chatml", from_=assistant, template=CHATML, system=SYSTEM_PROMPT)
    answer = client.chat(model="chatml", messages=QUESTION)
    assert answer.prompt_eval_count == CAPITAL_TOKENS  # the Go template makes the same prompt
    modelfile = f"FROM {assistant}\nMESSAGE user Hello!\nMESSAGE assistant Hi! How can I help?\n"
    created = httpx.post(
        server.url("/api/create"),
        json={"model": "history", "modelfile": modelfile, "stream": False},
    )
    assert created.json() == {"status": "success"}
    without = client.chat(model=assistant, messages=QUESTION, options={"num_predict": 1})
    remembered = client.chat(model="history", messages=QUESTION, options={"num_predict": 1})
    assert remembered.prompt_eval_count > without.prompt_eval_count + 10  # MESSAGEs come first


def test_copy_and_delete(client: ollama.Client, assistant: str):
    client.copy(assistant, "assistant-copy:v1")
    models = {model.model: model.digest for model in client.list().models}
    assert models["assistant-copy:v1"] == models[f"{assistant}:latest"]  # the same recipe
    client.delete("assistant-copy:v1")
    assert "assistant-copy:v1" not in {model.model for model in client.list().models}
    with pytest.raises(ollama.ResponseError) as gone:
        client.delete("assistant-copy:v1")
    assert gone.value.status_code == 404


def test_a_model_whose_gguf_file_moved_is_still_listed_and_can_be_deleted(client, tmp_path):
    """A new clone or a rebuilt virtual environment moves the file a model was made from."""
    moved = tmp_path / "model.gguf"
    shutil.copy(default_gguf(), moved)
    client.create(model="moved", from_=str(moved))
    moved.unlink()
    listed = {model.model: model for model in client.list().models}
    assert listed["moved:latest"].size == default_gguf().stat().st_size
    assert listed["moved:latest"].details.quantization_level == "Q4_1"
    with pytest.raises(ollama.ResponseError) as caught:
        client.generate(model="moved", prompt="hi")
    assert f"The GGUF file {moved} is gone" in caught.value.error
    client.delete("moved")
    assert "moved:latest" not in {model.model for model in client.list().models}


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.chat(model="no-such-model", messages=QUESTION),
        lambda c: c.generate(model="no-such-model", prompt="hi"),
        lambda c: c.show("no-such-model"),
        lambda c: c.create(model="x", from_="no-such-model"),
    ],
)
def test_an_unknown_model_is_a_404_with_ollamas_message(client: ollama.Client, call):
    with pytest.raises(ollama.ResponseError) as caught:
        call(client)
    assert caught.value.status_code == 404
    assert caught.value.error == 'model "no-such-model" not found, try pulling it first'


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.chat(model=NAME, messages=QUESTION, options={"temperature": "hot"}),
         "option temperature needs a number, not 'hot'"),
        (lambda c: c.chat(model=NAME, messages=QUESTION, options={"num_gpu": 1}),
         "option 'num_gpu' is not supported by this server"),
        (lambda c: c.chat(model=NAME, messages=QUESTION, keep_alive="a while"),
         "keep_alive 'a while' is not a duration like 5m, 30s or 0"),
        (lambda c: c.chat(model=NAME, messages=QUESTION, think=True),
         '"think" is not supported by this server'),
        (lambda c: c.create(model="bad name!", from_=NAME), "invalid model name 'bad name!'"),
        (lambda c: c.create(model="x", from_=NAME, parameters={"temprature": 1}),
         "unknown PARAMETER 'temprature'"),
        (lambda c: c.create(model="x", from_=NAME, quantize="q4_K_M"),
         "quantize is not supported by this server"),
        (lambda c: c.create(model="x", from_="./missing.gguf"), "FROM ./missing.gguf: there is "
         "no file at"),
    ],
)  # fmt: skip
def test_bad_requests_are_a_400_that_says_why(client: ollama.Client, assistant, call, message):
    with pytest.raises(ollama.ResponseError) as caught:
        call(client)
    assert caught.value.status_code == 400
    assert message in caught.value.error


def test_bodies_are_json_whatever_their_content_type(server: Server, assistant: str):
    body = b'{"model": "course-assistant", "prompt": "Hi", "stream": false, "options": ' \
        b'{"num_predict": 2}}'  # fmt: skip
    form = {"Content-Type": "application/x-www-form-urlencoded"}  # what `curl -d` sends
    assert httpx.post(server.url("/api/generate"), content=body, headers=form).json()["done"]
    missing = httpx.post(server.url("/api/generate"), json={"prompt": "Hi"})
    assert (missing.status_code, missing.json()) == (400, {"error": "model is required"})
    broken = httpx.post(server.url("/api/chat"), content=b"{not json")
    assert broken.status_code == 400
    assert broken.json()["error"] == (
        "the body is not valid JSON (Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1))"
    )


def test_a_client_that_goes_away_frees_the_llama_server_slot(server: Server, client, assistant):
    body = {"model": assistant, "prompt": COUNTING, "raw": True, "options": {"num_predict": 4000}}
    with httpx.stream("POST", server.url("/api/generate"), json=body, timeout=60) as response:
        assert response.headers["content-type"] == "application/x-ndjson"
        for number, _ in enumerate(response.iter_lines()):
            if number == 5:
                break  # leave after a few tokens; 4000 would take a minute
    slots = f"{llama_servers(server)[f'{assistant}:latest']}/slots"
    deadline = time.monotonic() + 5
    while any(slot["is_processing"] for slot in httpx.get(slots).json()):
        assert time.monotonic() < deadline, "llama-server went on generating for nobody"
        time.sleep(0.1)
    quick = client.generate(model=assistant, prompt=COUNTING, raw=True, options={"num_predict": 8})
    assert quick.eval_count == 8  # the one slot serves the next request at once


def test_keep_alive_zero_unloads_and_an_empty_request_loads(client: ollama.Client, assistant):
    assert client.generate(model=assistant, keep_alive=0).done_reason == "unload"
    assert all(model.model != f"{assistant}:latest" for model in client.ps().models)
    loaded = client.chat(model=assistant, messages=[], keep_alive="10m")
    assert loaded.done_reason == "load"
    running = {model.model: model for model in client.ps().models}[f"{assistant}:latest"]
    assert running.context_length == 2048 and running.size_vram == 0
    left = running.expires_at.timestamp() - time.time()
    assert 540 < left <= 600
    client.chat(model=assistant, messages=QUESTION, keep_alive=0, options={"num_predict": 2})
    assert all(model.model != f"{assistant}:latest" for model in client.ps().models)
    brief = client.chat(model=assistant, messages=QUESTION, keep_alive="1s")
    assert brief.load_duration > 0.1e9  # it had to load again: a llama-server started
    deadline = time.monotonic() + 10
    while any(model.model == f"{assistant}:latest" for model in client.ps().models):
        assert time.monotonic() < deadline, "the model outlived its keep_alive"
        time.sleep(0.2)


def test_embed_runs_an_embedding_llama_server(client: ollama.Client, assistant: str):
    answer = client.embed(model=assistant, input=["Paris is in France.", "Cats purr."])
    assert len(answer.embeddings) == 2 and len(answer.embeddings[0]) == 576
    assert math.isclose(sum(x * x for x in answer.embeddings[0]), 1, rel_tol=1e-4)
    assert answer.prompt_eval_count > 0
    short = client.embed(model=assistant, input="Paris", dimensions=8).embeddings[0]
    assert len(short) == 8 and math.isclose(sum(x * x for x in short), 1, rel_tol=1e-4)


def test_a_gguf_uploaded_as_a_blob_makes_a_model(server: Server, client: ollama.Client):
    """The way that works with a real Ollama too: the GGUF file goes up as a blob first."""
    modelfile = parse_modelfile(MODELFILE.format(gguf=default_gguf()))
    digest = client.create_blob(modelfile.from_)
    client.create(model="from-blob", **modelfile.create_args(digest))
    shown = client.show("from-blob")
    assert shown.details.parameter_size == "134.52M" and "You are a helpful" in shown.modelfile
    assert httpx.head(server.url(f"/api/blobs/{digest}")).status_code == 200
    client.delete("from-blob")  # the last model using the blob: it goes too
    assert httpx.head(server.url(f"/api/blobs/{digest}")).status_code == 404


def test_the_openai_endpoints_apply_the_modelfile(server: Server, assistant: str):
    client = openai.OpenAI(base_url=server.url("/v1"), api_key="ollama")
    assert f"{assistant}:latest" in [model.id for model in client.models.list()]
    answer = client.chat.completions.create(model=assistant, messages=QUESTION)
    assert answer.choices[0].message.content.strip()
    assert answer.usage.prompt_tokens > CAPITAL_TOKENS + 15  # the Modelfile's SYSTEM is there
    stream = client.chat.completions.create(model=assistant, messages=CAPITAL, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices).strip()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=QUESTION)


def test_the_requests_client_keeps_the_system_message(server: Server, assistant: str):
    with OllamaClient(server.base_url, timeout_s=60) as client:
        assert f"{assistant}:latest" in [model["name"] for model in client.list_models()]
        assert client.show(assistant)["details"]["family"] == "llama"
        answer = client.chat(assistant, CAPITAL)
        assert answer["prompt_eval_count"] == CAPITAL_TOKENS  # the source chapter's lost it
        assert answer["message"]["content"].strip()
        pieces = list(client.chat(assistant, CAPITAL, stream=True, num_predict=4))
        assert (pieces[-1]["done"], pieces[-1]["eval_count"]) == (True, 4)
        text = client.generate(assistant, "What is the capital of France?",
                               options={"temperature": 0, "num_predict": 16})  # fmt: skip
        assert text["response"].strip() and 0 < text["eval_count"] <= 16
        with pytest.raises(OllamaError) as caught:
            client.generate("no-such-model", "hi")
        assert caught.value.status == 404 and "not found" in caught.value.message
    with pytest.raises(OllamaConnectionError, match="is the server running"):
        OllamaClient(f"http://127.0.0.1:{free_port()}", timeout_s=5).list_models()


def test_keep_alive_reads_numbers_and_durations():
    assert keep_alive_seconds(None) is None
    assert [keep_alive_seconds(v) for v in (0, "0", 30, "30", "5m", "1h30m", "1.5s", "250ms")] \
        == [0, 0, 30, 30, 300, 5400, 1.5, 0.25]  # fmt: skip
    assert keep_alive_seconds(-1) == keep_alive_seconds("-5m") == math.inf


def test_options_get_llama_servers_names():
    assert llama_options({"num_predict": 8, "stop": "\n", "top_k": "5", "num_ctx": 4096}) == {
        "n_predict": 8, "stop": ["\n"], "top_k": 5}  # fmt: skip


def test_names_are_normalized_as_ollama_does(tmp_path):
    assert normalize_name("assistant") == "assistant:latest"
    assert normalize_name("me/assistant:v1") == "me/assistant:v1"
    with pytest.raises(StoreError, match="invalid model name"):
        normalize_name("two words")
    assert [human_count(n) for n in (134_515_008, 8_030_261_248, 999)] == ["134.52M", "8.0B", "999"]
    assert ModelStore(tmp_path).list() == []


def test_manifests_written_before_facts_were_recorded_still_list(tmp_path):
    """Stores made by earlier versions of the course hold only the path, maybe of a moved file."""
    store = ModelStore(tmp_path)
    for name, gguf in (("here", default_gguf()), ("moved", tmp_path / "gone.gguf")):
        manifest = {"name": f"{name}:latest", "gguf": str(gguf), "parent": str(gguf)}
        (store.manifests / f"{name}%3Alatest.json").write_text(json.dumps(manifest))
    listed = {model.name: model for model in store.list()}
    assert listed["here:latest"].size == default_gguf().stat().st_size
    assert listed["here:latest"].details["quantization_level"] == "Q4_1"
    assert (listed["moved:latest"].size, listed["moved:latest"].details["format"]) == (0, "gguf")


def test_ollama_host_reads_the_forms_ollama_accepts(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert ollama_host() == "http://127.0.0.1:11434"
    assert ollama_host("0.0.0.0:11434") == "http://127.0.0.1:11434"  # all addresses: ask locally
    assert ollama_host("http://box.local:8080") == "http://box.local:8080"
    monkeypatch.setenv("OLLAMA_HOST", "localhost")
    assert ollama_host() == "http://localhost:11434"
