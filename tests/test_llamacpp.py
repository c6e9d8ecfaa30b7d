"""A real llama-server on the course's GGUF: both APIs, streaming, the template, keys, errors."""

import httpx
import openai
import psutil
import pytest

from llmlab.errors import ModelNotFoundError, PortInUseError, ServerStartError
from llmlab.llamacpp.client import LlamaCppClient, LlamaCppError
from llmlab.prompts import chat
from llmlab.servers import Server
from llmlab.servers.llamacpp import llama_server

pytestmark = pytest.mark.server

API_KEY = "sk-llama-test"
CAPITAL = chat("What is the capital of France?")


@pytest.fixture(scope="module")
def server():
    with llama_server(api_key=API_KEY, parallel=4) as server:
        pid = server.process.pid
        yield server
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest.fixture(scope="module")
def client(server: Server):
    with LlamaCppClient(server.base_url, api_key=API_KEY) as client:
        yield client


def test_completion_continues_text_and_reports_timings(client: LlamaCppClient):
    answer = client.generate("The capital of France is", n_predict=4, temperature=0)
    assert answer["content"].strip() and answer["tokens_evaluated"] == 5  # the five words
    assert answer["stop_type"] == "limit"
    assert answer["timings"]["predicted_n"] == 4
    assert answer["timings"]["predicted_per_second"] > 0


def test_a_stop_word_ends_the_answer(client: LlamaCppClient):
    whole = client.chat(CAPITAL, n_predict=32, temperature=0)["content"]
    word = whole.split()[1]  # a word this model writes on this CPU, whatever it says
    answer = client.chat(CAPITAL, n_predict=32, temperature=0, stop=[word])
    assert word not in answer["content"] and whole.startswith(answer["content"])
    assert (answer["stop_type"], answer["stopping_word"]) == ("word", word)


def test_streaming_sends_the_same_answer_in_pieces(client: LlamaCppClient):
    whole = client.chat(CAPITAL, n_predict=32, temperature=0)["content"]
    pieces = list(client.chat(CAPITAL, n_predict=32, temperature=0, stream=True))
    assert "".join(piece["content"] for piece in pieces) == whole
    assert len(pieces) > 3
    assert pieces[-1]["stop"] is True and "timings" in pieces[-1]


def test_streams_one_after_another_all_arrive(client: LlamaCppClient):
    # Reusing the connection a stream just ended on fails about one time in four (see
    # llmlab.http.common.stream_headers); twenty streams in a row must all come back whole.
    for _ in range(20):
        pieces = list(client.generate("The capital of France is", n_predict=4, stream=True))
        assert pieces[-1]["stop"]


def test_chat_uses_the_models_own_template(client: LlamaCppClient, llm):
    assert client.apply_template(CAPITAL) == llm.apply_chat_template(CAPITAL)
    prompt_ids = llm.tokenizer(llm.apply_chat_template(CAPITAL), add_special_tokens=False)
    answer = client.chat(CAPITAL, n_predict=32, temperature=0)
    assert answer["tokens_evaluated"] == len(prompt_ids["input_ids"])  # the templated prompt


def test_tokenize_and_detokenize_agree_with_transformers(client: LlamaCppClient, llm):
    text = "Hello, local models!"
    tokens = client.tokenize(text)
    assert tokens == llm.tokenizer(text)["input_ids"]
    assert client.detokenize(tokens) == text


def test_props_slots_and_metrics(client: LlamaCppClient):
    assert client.props()["total_slots"] == 4
    assert len(client.slots()) == 4
    assert "llamacpp:prompt_tokens_total" in client.metrics()


def test_a_prompt_longer_than_a_slot_is_a_clear_error(client: LlamaCppClient):
    with pytest.raises(LlamaCppError, match="llama-server answered 400: .*context"):
        client.generate("word " * 3000, n_predict=4)


def test_the_openai_api_answers_too(server: Server):
    client = openai.OpenAI(base_url=server.url("/v1"), api_key=API_KEY)
    response = client.chat.completions.create(
        model=server.model, messages=CAPITAL, temperature=0, max_tokens=32
    )
    assert response.choices[0].message.content.strip()
    assert response.usage.prompt_tokens == 27


def test_the_api_key_is_enforced(server: Server):
    assert httpx.get(server.url("/v1/models")).status_code == 401
    assert httpx.post(server.url("/completion"), json={"prompt": "Hi"}).status_code == 401
    assert httpx.get(server.url("/v1/models"), headers=server.headers).status_code == 200
    assert httpx.get(server.url("/health")).status_code == 200


def test_the_api_key_is_not_on_the_command_line(server: Server):
    # Any user of the machine reads every process's arguments (`ps -eo args`).
    assert API_KEY not in " ".join(psutil.Process(server.process.pid).cmdline())


def test_a_wrong_gguf_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="No GGUF file at"):
        llama_server(tmp_path / "missing.gguf")


def test_a_file_that_is_not_a_model_fails_with_the_servers_log(tmp_path):
    fake = tmp_path / "notes.gguf"
    fake.write_text("this is not a model")
    with pytest.raises(ServerStartError, match="exited with code") as failure:
        llama_server(fake).start()
    assert "notes.gguf" in str(failure.value)


def test_a_taken_port_is_a_clear_error(server: Server):
    with pytest.raises(PortInUseError):
        llama_server(port=server.port).start()
