"""Open WebUI in front of the course's servers.

Open WebUI is not part of the course's environment (3 GB with its own PyTorch): the settings
are checked everywhere; the real page is driven only where
`python -m llmlab.webui.open_webui install` has run (chapter 07 says how), which CI does not do.
"""

import json
from pathlib import Path

import httpx
import pytest

from llmlab.models import default_gguf
from llmlab.ollama import ollama_server
from llmlab.servers import LOCALHOST
from llmlab.webui import open_webui
from llmlab.webui.browser import ask_open_webui, browser_page

pytestmark = [pytest.mark.server, pytest.mark.browser]


def test_settings_keep_it_offline_and_on_the_given_backends():
    env = open_webui.environment(ollama_url="http://127.0.0.1:11434")
    assert env["OFFLINE_MODE"] == "true" and env["HF_HUB_OFFLINE"] == "1"
    assert env["OLLAMA_BASE_URL"] == "http://127.0.0.1:11434"
    assert (env["ENABLE_OLLAMA_API"], env["ENABLE_OPENAI_API"]) == ("true", "false")
    # Its built-in tools would be sent with every chat; a small text-only model cannot use them.
    assert json.loads(env["DEFAULT_MODEL_PARAMS"]) == {"function_calling": "legacy"}
    assert env["WEBUI_AUTH"] == "false"
    assert env["ENABLE_PERSISTENT_CONFIG"] == "false"  # these settings win at every start
    assert env["DATA_DIR"].startswith(str(open_webui.home()))  # chats stay in the course cache
    # A key of its own, kept in its folder: no key file left in the folder it starts from.
    assert env["WEBUI_SECRET_KEY"] == (open_webui.home() / "secret_key").read_text()
    assert len(env["WEBUI_SECRET_KEY"]) >= 24


def test_an_openai_backend_gets_its_key():
    env = open_webui.environment(
        openai_url="http://127.0.0.1:8000/v1", openai_api_key="k", auth=True
    )
    assert (env["OPENAI_API_BASE_URL"], env["OPENAI_API_KEY"]) == ("http://127.0.0.1:8000/v1", "k")
    assert (env["ENABLE_OLLAMA_API"], env["WEBUI_AUTH"]) == ("false", "true")


def test_no_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="Open WebUI needs a backend"):
        open_webui.environment()


@pytest.mark.skipif(not open_webui.installed(), reason="Open WebUI is not installed (not in CI)")
def test_open_webui_answers_from_the_ollama_compatible_server(tmp_path):
    with ollama_server(threads=1) as ollama:
        httpx.post(
            ollama.url("/api/create"),
            json={"model": "smollm2", "from": str(default_gguf()), "stream": False},
            timeout=60,
        ).raise_for_status()
        with open_webui.open_webui_server(
            ollama_url=ollama.base_url, model="smollm2:latest"
        ) as page_server:
            assert page_server.host == LOCALHOST
            with browser_page() as page:
                answer = ask_open_webui(
                    page, page_server.base_url, "What is the capital of France?"
                )
                page.screenshot(path=tmp_path / "open_webui.png")
    assert answer.strip()
    assert not (Path.cwd() / ".webui_secret_key").exists()
    assert (tmp_path / "open_webui.png").stat().st_size > 10_000
