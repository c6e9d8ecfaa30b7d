"""Drive a chat page in a real, headless Chromium, the way a student's browser would.

Chapter 07 and its tests check what a user sees: a question typed into the page, the answer
streaming in, the Stop button, an error message, a login. Playwright drives the page; the
browser is the system's Chromium (Playwright's own browser download is not needed).

In a notebook, call ``in_browser``: Playwright's synchronous API refuses to run where an asyncio
loop is running, and Jupyter runs one, so ``in_browser`` runs the whole visit in a worker thread
and hands back its result::

    from llmlab.webui.browser import ask_gradio, in_browser, screenshot

    def visit(page):
        answer = ask_gradio(page, chat.base_url, "What is the capital of France?")
        screenshot(page, "chat.png")
        return answer

    answer = in_browser(visit)

Scripts and tests may also use ``browser_page`` directly.

The page drivers find elements by what Gradio's own end-to-end tests use, its ``data-testid``
attributes (``textbox``, ``submit-button``, ``stop-button``, ``bot``), and by the labels a
screen reader reads, so they keep working when the page's look changes. Drivers for llama.cpp's
own page (``ask_llama_server_ui``) and Open WebUI (``ask_open_webui``) follow the same shape.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from llmlab.errors import LLMLabError

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, ViewportSize

T = TypeVar("T")

#: Where to look for Chromium, after ``$LLMLAB_CHROMIUM``.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: No sandbox: the course's containers run as root, where Chromium's sandbox cannot start. The
#: rest keep a headless browser from reaching out to Google's services, which offline hangs.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)

#: A laptop-sized window: screenshots read well in a notebook and on a slide.
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}


class ChromiumNotFoundError(LLMLabError, FileNotFoundError):
    """No Chromium or Chrome to drive."""


class ChatPageError(LLMLabError, RuntimeError):
    """A chat page gave no answer; the message is what the page showed instead."""


def find_chromium() -> str:
    """The path of a Chromium (or Chrome) binary: ``$LLMLAB_CHROMIUM``, else the first of
    ``CHROMIUM_NAMES`` on the ``PATH``."""
    configured = os.environ.get("LLMLAB_CHROMIUM")
    if configured:
        if not Path(configured).is_file():
            raise ChromiumNotFoundError(
                f"LLMLAB_CHROMIUM is {configured!r}, which is no file: set it to the browser's "
                "binary, or unset it to look on the PATH."
            )
        return configured
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise ChromiumNotFoundError(
        "No Chromium or Chrome found (looked for "
        + ", ".join(CHROMIUM_NAMES)
        + " on the PATH). Install one:\n"
        "    Debian/Ubuntu: sudo apt-get install chromium\n"
        "    macOS:         brew install --cask chromium  (or install Google Chrome)\n"
        "or set LLMLAB_CHROMIUM to the browser's binary, e.g. on macOS\n"
        "    /Applications/Google Chrome.app/Contents/MacOS/Google Chrome"
    )


@contextmanager
def browser_page(*, timeout_s: float = 30, viewport: ViewportSize | None = None) -> Iterator[Page]:
    """A fresh page in a headless Chromium, closed (with the browser) on exit.

    ``timeout_s`` is how long each Playwright action waits for its element. Use it in the
    thread that opened it: Playwright's objects belong to their thread (see ``in_browser``).
    """
    from playwright.sync_api import sync_playwright  # only where a browser is wanted

    executable = find_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport=viewport or VIEWPORT)
            page.set_default_timeout(timeout_s * 1000)
            yield page
        finally:
            browser.close()


def in_browser(
    visit: Callable[[Page], T], *, timeout_s: float = 30, viewport: ViewportSize | None = None
) -> T:
    """Open a ``browser_page``, call ``visit(page)`` and return what it returns, in a worker
    thread: the way to use the browser from a notebook cell, where an asyncio loop runs."""

    def run() -> T:
        with browser_page(timeout_s=timeout_s, viewport=viewport) as page:
            return visit(page)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmlab-browser") as pool:
        return pool.submit(run).result()


def screenshot(page: Page, path: str | Path) -> Path:
    """Save what the page shows now as a PNG at ``path`` (folders made as needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    return path


def open_gradio(page: Page, url: str) -> None:
    """Go to a Gradio chat page and wait until its message box takes input."""
    page.goto(url)
    page.get_by_test_id("textbox").first.wait_for()


def login_gradio(page: Page, url: str, user: str, password: str) -> None:
    """Fill in the login form Gradio shows under ``auth`` and submit it."""
    page.goto(url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()


def ask_gradio(
    page: Page,
    url: str | None,
    question: str,
    *,
    timeout_s: float = 120,
    stop_after_chars: int | None = None,
) -> str:
    """Ask a Gradio ``ChatInterface`` ``question`` and return the answer's text as shown.

    ``url`` opens the page first (a new conversation); ``None`` asks on the page as it is. The
    answer is complete when the submit button comes back. With ``stop_after_chars``, Stop is
    pressed as soon as that much of the answer has streamed in, and the partial answer returned.
    If no answer comes, ``ChatPageError`` carries the error the page shows.
    """
    if url is not None:
        open_gradio(page, url)
    asked_before = page.get_by_test_id("user").count()
    message_box = page.get_by_test_id("textbox").first
    message_box.fill(question)
    message_box.press("Enter")
    # The question shows up at once; the stop button replaces submit until the answer is done.
    page.get_by_test_id("user").nth(asked_before).wait_for()
    answer = page.get_by_test_id("bot").nth(asked_before)
    # The submit button comes back when the answer is done; an error shows a toast instead (and
    # Gradio 6 may leave the stop button up after it).
    done = page.get_by_test_id("submit-button").or_(page.get_by_test_id("toast-body"))
    done = done.filter(visible=True)
    if stop_after_chars is not None:
        # A sampled answer may also end by itself before it is that long: nothing to stop then.
        _wait_for_text(page, answer, stop_after_chars, timeout_s, unless=done)
        if not done.count():
            stop_gradio(page, timeout_s=timeout_s)
    done.first.wait_for(timeout=timeout_s * 1000)
    if not answer.count():
        raise ChatPageError(gradio_error(page) if _shows_error(page) else "No answer came.")
    return answer.inner_text()


def stop_gradio(page: Page, *, timeout_s: float = 30) -> None:
    """Press Stop on a Gradio chat page and wait until it takes a new message."""
    page.get_by_test_id("stop-button").click()
    page.get_by_test_id("submit-button").wait_for(timeout=timeout_s * 1000)


def gradio_error(page: Page, *, timeout_s: float = 30) -> str:
    """The text of the error Gradio shows (a ``gr.Error`` toast), waiting for it to appear."""
    toast = page.get_by_test_id("toast-body").first
    toast.wait_for(timeout=timeout_s * 1000)
    return toast.inner_text()


def ask_llama_server_ui(
    page: Page,
    url: str | None,
    question: str,
    *,
    timeout_s: float = 120,
    stop_after_chars: int | None = None,
) -> str:
    """Ask llama.cpp's own chat page (llama-server's ``/``) and return the answer's text.

    Found by the labels its Svelte app gives screen readers: the message box is the page's
    textarea, each answer a group "Assistant message with actions", and "Stop" the button shown
    while an answer streams. ``url`` and ``stop_after_chars`` as in ``ask_gradio``.
    """
    if url is not None:
        page.goto(url)
        page.locator("textarea").first.wait_for()
    answers = page.get_by_role("group", name="Assistant message with actions")
    asked_before = answers.count()
    message_box = page.locator("textarea").first
    message_box.fill(question)
    message_box.press("Enter")
    answer = answers.nth(asked_before)
    answer.wait_for(timeout=timeout_s * 1000)
    # The answer's text, without the model name and timings shown in the same group.
    blocks = answer.locator(".markdown-block")

    def text() -> str:
        return "\n".join(blocks.all_inner_texts()).strip()

    # The send button turns into "Stop" (its screen-reader name) while the answer streams.
    stop = page.get_by_role("button", name="Stop", exact=True).filter(visible=True)
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    with contextlib.suppress(PlaywrightTimeoutError):  # a short answer may be over already
        stop.first.wait_for(timeout=5_000)
    deadline = time.monotonic() + timeout_s
    # (An answer may also end by itself before it is that long: then there is nothing to stop.)
    while stop_after_chars is not None and len(text()) < stop_after_chars and stop.count():
        if time.monotonic() > deadline:
            raise TimeoutError(f"The answer did not reach {stop_after_chars} characters.")
        page.wait_for_timeout(100)
    if stop_after_chars is not None and stop.count():
        stop.first.click()
    # On a busy machine the first token can come after the 5 s above: an answer is done when
    # it has text and no Stop button.
    while stop.count() or not text():
        if time.monotonic() > deadline:
            raise TimeoutError(f"The answer did not finish in {timeout_s} s.")
        page.wait_for_timeout(100)
    return text()


def ask_open_webui(page: Page, url: str, question: str, *, timeout_s: float = 120) -> str:
    """Ask Open WebUI (signed in, or with ``WEBUI_AUTH=False``) and return the answer's text.

    It shows release notes on a first visit: they are closed first. The answer is complete when
    its text has not changed for two seconds (the page keeps a connection open, so there is no
    network quiet to wait for).
    """
    page.goto(url)
    page.locator("#chat-input").wait_for(timeout=timeout_s * 1000)
    notes = page.get_by_role("button", name="Okay, Let's Go!")
    if notes.count():
        notes.click()
    page.locator("#chat-input").click()
    page.keyboard.type(question)
    page.keyboard.press("Enter")
    answer = page.locator("#response-content-container").last
    answer.wait_for(timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    text, unchanged_since = "", time.monotonic()
    while time.monotonic() - unchanged_since < 2:
        if time.monotonic() > deadline:
            raise TimeoutError(f"Open WebUI's answer did not finish in {timeout_s} s.")
        page.wait_for_timeout(250)
        now = answer.inner_text()
        if now != text or not now:
            text, unchanged_since = now, time.monotonic()
    return text.strip()


def _shows_error(page: Page) -> bool:
    return page.get_by_test_id("toast-body").count() > 0


def _wait_for_text(
    page: Page, element: Locator, chars: int, timeout_s: float, *, unless: Locator
) -> None:
    """Wait until ``element`` shows at least ``chars`` characters of text, or ``unless`` shows."""
    deadline = time.monotonic() + timeout_s
    while not (element.count() and len(element.inner_text()) >= chars) and not unless.count():
        if time.monotonic() > deadline:
            shown = element.inner_text() if element.count() else "(no answer shown)"
            raise TimeoutError(
                f"The answer did not reach {chars} characters in {timeout_s} s: {shown!r}"
            )
        page.wait_for_timeout(100)
