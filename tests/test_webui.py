"""The chat page of chapter 07 in a real headless Chromium, in front of a real llama-server.

Every check is something a user sees or a server does: the answer in the page is the model's,
Stop frees the server's slot, a dead server gives a message that says what to do, the login
keeps strangers out. Chromium missing is an error, not a skip: CI installs it.
"""

import asyncio
import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import psutil
import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page

from llmlab.llamacpp.webui import webui_dir
from llmlab.prompts import SYSTEM_PROMPT, chat
from llmlab.servers import LOCALHOST, Server, free_port
from llmlab.servers.llamacpp import llama_server
from llmlab.webui.__main__ import parse_args
from llmlab.webui.app import chat_app_server, openai_base_url
from llmlab.webui.browser import (
    ChatPageError,
    ChromiumNotFoundError,
    ask_gradio,
    ask_llama_server_ui,
    browser_page,
    find_chromium,
    in_browser,
    login_gradio,
    open_gradio,
    screenshot,
)

pytestmark = [pytest.mark.server, pytest.mark.browser]

CAPITAL = "What is the capital of France?"
ENDLESS = "List the numbers from 1 to 1000, separated by commas."  # greedy: 1500 tokens, no end
LOGIN = ("student", "s3cret:pass")  # a colon in the password must survive the CLI
#: The longest answer the test server writes: a stopped answer is shorter.
PAGE_MAX_TOKENS = 512


@pytest.fixture(scope="module")
def llama():
    # One thread, so the other work on a small machine cannot make it crawl; two slots, so a
    # test can see which one Stop freed; llama.cpp's own chat page at / (--path). That page
    # sends no temperature or length of its own, so the server's defaults apply: greedy (a
    # sampled answer may end before Stop is pressed) and at most PAGE_MAX_TOKENS (the page's
    # default is "until the context is full", minutes of rambling on one thread).
    page_defaults = ["--temp", "0", "--n-predict", str(PAGE_MAX_TOKENS)]
    extra_args = ["--path", str(webui_dir()), *page_defaults]
    with llama_server(threads=1, parallel=2, extra_args=extra_args) as server:
        yield server


@pytest.fixture(scope="module")
def chat_page(llama: Server):
    with chat_app_server(llama.base_url) as server:
        yield server


@pytest.fixture(scope="module")
def page():
    with browser_page() as page:
        yield page


def busy_slots(llama: Server) -> int:
    return sum(slot["is_processing"] for slot in httpx.get(llama.url("/slots")).json())


def tokens_predicted(llama: Server) -> float:
    metrics = httpx.get(llama.url("/metrics")).text
    return float(re.search(r"^llamacpp:tokens_predicted_total (\S+)", metrics, re.M).group(1))


def set_number(page: Page, label: str, value: float) -> None:
    """Type into a slider's number box, as a user does (Gradio applies it on Enter)."""
    box = page.get_by_label(f"number input for {label}")
    box.fill(str(value))
    box.press("Enter")


def test_the_cli_binds_this_machine_only_and_explains_a_bad_login(capsys):
    args = parse_args(["--base-url", "http://127.0.0.1:8080"])
    assert (args.host, args.share, args.auth) == (LOCALHOST, False, None)
    assert parse_args(["--base-url", "x", "--auth", "a:b:c"]).auth == ("a", "b:c")
    with pytest.raises(SystemExit):
        parse_args(["--base-url", "x", "--auth", "no-password"])
    assert "expected USER:PASSWORD" in capsys.readouterr().err


def test_base_urls_work_with_or_without_v1():
    assert openai_base_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080/v1"
    assert openai_base_url("http://127.0.0.1:11434/v1/") == "http://127.0.0.1:11434/v1"


def test_a_missing_chromium_says_how_to_install_it(monkeypatch):
    monkeypatch.delenv("LLMLAB_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ChromiumNotFoundError, match="sudo apt-get install chromium"):
        find_chromium()


def test_the_answer_in_the_page_is_the_models(
    llama: Server, chat_page: Server, page: Page, tmp_path
):
    open_gradio(page, chat_page.base_url)
    set_number(page, "Temperature", 0)  # greedy, so the API must give the very same answer
    set_number(page, "Max tokens", 48)
    before = tokens_predicted(llama)
    started = time.monotonic()
    answer = ask_gradio(page, None, CAPITAL, timeout_s=60)
    print(f"question to answer in the browser: {time.monotonic() - started:.1f} s")
    api = openai.OpenAI(base_url=llama.url("/v1"), api_key="none")
    expected = api.chat.completions.create(
        model=llama.model, messages=chat(CAPITAL), temperature=0, max_tokens=48
    )
    assert answer.strip() == expected.choices[0].message.content.strip()  # the model's words
    assert tokens_predicted(llama) > before
    shot = screenshot(page, tmp_path / "shots" / "chat.png")
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000


def test_the_settings_are_on_the_page(llama: Server, chat_page: Server, page: Page):
    open_gradio(page, chat_page.base_url)
    assert page.get_by_label("System prompt").input_value() == SYSTEM_PROMPT
    model = page.get_by_label("Model")
    assert model.input_value() == llama.model
    model.click()
    options = page.get_by_role("option")  # the list from the server's /v1/models
    assert options.count() == 1 and llama.model in options.first.inner_text()
    model.press("Escape")
    for setting in ("Temperature", "Top-p", "Max tokens"):
        assert page.get_by_label(f"range slider for {setting}").is_visible()


def test_stop_frees_the_servers_slot(llama: Server, chat_page: Server, page: Page):
    open_gradio(page, chat_page.base_url)
    set_number(page, "Temperature", 0)
    set_number(page, "Max tokens", 1500)  # the server writes PAGE_MAX_TOKENS at most
    before = tokens_predicted(llama)
    partial = ask_gradio(page, None, ENDLESS, stop_after_chars=40, timeout_s=60)
    stopped = time.monotonic()
    while busy_slots(llama) and time.monotonic() - stopped < 5:
        time.sleep(0.1)
    # An endless answer would keep the slot busy for tens of seconds on one thread.
    assert busy_slots(llama) == 0, "the server still generates for a page that pressed Stop"
    assert tokens_predicted(llama) - before < PAGE_MAX_TOKENS  # it stopped, it did not finish
    assert 40 <= len(partial) < 1000
    # ask_gradio returned once the page took a new message: what it shows is what it kept.
    assert len(page.get_by_test_id("bot").last.inner_text()) < 1000


def test_llama_servers_own_page_answers_from_the_model(llama: Server, page: Page, tmp_path):
    before = tokens_predicted(llama)
    answer = ask_llama_server_ui(page, llama.base_url, CAPITAL, timeout_s=90)
    assert answer
    # The page's answer was generated by this server: at least as many tokens as it shows words
    # (counted in /metrics once the task ends, which on a busy machine can trail the page).
    deadline = time.monotonic() + 30
    while busy_slots(llama) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert tokens_predicted(llama) - before >= len(answer.split())
    shot = screenshot(page, tmp_path / "shots" / "llama-server.png")
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000


def test_stop_on_llama_servers_page_frees_the_slot(llama: Server, page: Page):
    before = tokens_predicted(llama)
    partial = ask_llama_server_ui(page, llama.base_url, ENDLESS, stop_after_chars=40, timeout_s=60)
    stopped = time.monotonic()
    while busy_slots(llama) and time.monotonic() - stopped < 5:
        time.sleep(0.1)
    # The endless answer would go on for PAGE_MAX_TOKENS: the slot is free only because the
    # page hung up.
    assert busy_slots(llama) == 0, "the server still generates for a page that pressed Stop"
    assert tokens_predicted(llama) - before < PAGE_MAX_TOKENS
    assert 40 <= len(partial) < 1000


def test_a_dead_server_gives_a_clear_message_not_a_hang(page: Page):
    dead = f"http://127.0.0.1:{free_port()}"
    with chat_app_server(dead) as lonely:
        open_gradio(page, lonely.base_url)
        assert (
            "Cannot reach the model server at " + dead
            in page.locator("#backend-notice").inner_text()
        )
        # The page says so (ChatPageError); a page that hung would raise TimeoutError.
        with pytest.raises(ChatPageError, match=re.escape(dead) + ".*Is it running?"):
            ask_gradio(page, None, CAPITAL, timeout_s=30)
        assert "Traceback" not in page.content()


def test_a_login_keeps_strangers_out(llama: Server, page: Page):
    user, password = LOGIN
    with chat_app_server(llama.base_url, auth=LOGIN) as locked:
        assert httpx.get(locked.url("/config")).status_code == 401
        login_gradio(page, locked.base_url, user, "wrong")
        page.get_by_text("Incorrect Credentials").wait_for()
        assert page.get_by_label("Message").count() == 0  # no chat behind a wrong password
        login_gradio(page, locked.base_url, user, password)
        page.get_by_label("Message").wait_for()


def test_the_page_binds_localhost_only(chat_page: Server):
    listening = [
        c.laddr.ip
        for c in psutil.Process(chat_page.process.pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert listening == [LOCALHOST]


def test_a_notebook_can_drive_the_browser_while_its_event_loop_runs(
    llama: Server, chat_page: Server
):
    async def notebook_cell() -> str:
        with pytest.raises(PlaywrightError, match="asyncio loop"), browser_page():
            pass  # the plain sync API refuses, as it does in Jupyter
        return in_browser(lambda page: ask_gradio(page, chat_page.base_url, CAPITAL))

    before = tokens_predicted(llama)
    # A thread of its own plays the kernel: this one holds the module's browser, and a sync
    # Playwright counts as a running loop, where asyncio.run refuses to start.
    with ThreadPoolExecutor(1) as kernel:
        assert kernel.submit(asyncio.run, notebook_cell()).result().strip()
    assert tokens_predicted(llama) > before  # sampled at the page's temperature: any answer
