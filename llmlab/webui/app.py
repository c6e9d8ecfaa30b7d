"""A chat page in the browser in front of any OpenAI-compatible server.

Chapter 07 puts a face on the servers of the earlier chapters: vLLM, llama-server, the course's
FastAPI service and the Ollama-compatible server all speak ``/v1/chat/completions``, so one small
Gradio app, talking through the official ``openai`` client, chats with each of them.

What it takes care of, because a chat page that gets these wrong is worse than none:

* replies stream in as the model writes them;
* Stop really stops: closing the stream drops the HTTP connection, and the server frees its slot
  (a page that only stops *showing* tokens leaves the model generating for nobody);
* a server that is down or answers an error gives a message in the page that names the URL and
  what to do, never a traceback and never a spinner that turns forever;
* it binds 127.0.0.1 and makes no public share link unless asked, and takes a login if given.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from typing import Any

import gradio as gr
import openai

from llmlab.http.common import error_message
from llmlab.prompts import SYSTEM_PROMPT
from llmlab.servers import LOCALHOST, Server

#: Connecting fails fast when the server is down; a reply may take long on a slow machine.
TIMEOUT = openai.Timeout(120, connect=5)  # the client's own class (its HTTP stack's)

#: Answers 200 once the page is served: the chat, or the login form under ``auth`` (where
#: ``/config`` and the API answer 401). Checked on Gradio 6.
HEALTH_PATH = "/"

#: System fonts only: Gradio's default theme loads Google Fonts, which an offline page waits for.
#: (``launch`` takes the theme; a notebook that launches the app itself may pass it too.)
THEME = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def openai_base_url(base_url: str) -> str:
    """The ``base_url`` the ``openai`` client wants: the server's address with ``/v1``.

    The course's ``Server.base_url`` has no ``/v1`` (``http://127.0.0.1:8080``); URLs copied from
    other docs often do. Both work.
    """
    url = base_url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def list_models(client: openai.OpenAI) -> list[str]:
    """The model names the server offers (``GET /v1/models``)."""
    return [model.id for model in client.models.list()]


def explain(error: openai.OpenAIError, base_url: str) -> str:
    """A sentence for the page: what went wrong with the server at ``base_url``, what to do."""
    if isinstance(error, openai.APITimeoutError):
        return (
            f"The model server at {base_url} did not answer in time. It may be busy or stuck: "
            f"check its log, or restart it."
        )
    if isinstance(error, openai.APIConnectionError):
        return (
            f"Cannot reach the model server at {base_url}. Is it running? Start it (see the "
            f"chapter's first cells), or point this page at the right address with --base-url."
        )
    if isinstance(error, openai.AuthenticationError):
        return (
            f"The model server at {base_url} refused the API key: pass the right one (--api-key)."
        )
    if isinstance(error, openai.APIStatusError):
        return (
            f"The model server at {base_url} answered {error.status_code}: "
            f"{error_message(error.response)}"
        )
    return f"The model server at {base_url} failed: {error}"


def as_text(content: Any) -> str:
    """The text of a chat message as Gradio keeps it: a string, or a list of parts (files and
    components, which a text-only model cannot read, are left out)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text", ""))
    if isinstance(content, Sequence):
        return "".join(as_text(part) for part in content)
    return ""


def build_chat_app(
    base_url: str,
    *,
    api_key: str | None = None,
    model: str | None = None,
    system_prompt: str = SYSTEM_PROMPT,
    temperature: float = 0.7,
    top_p: float = 0.95,
    max_tokens: int = 512,
    title: str = "Chat with a local model",
) -> gr.Blocks:
    """A Gradio chat page for the OpenAI-compatible server at ``base_url``.

    The model list comes from the server's ``/v1/models`` once, here; ``model`` picks the first
    choice (default: the server's first model). If the list cannot be had, the page still builds
    and says why at the top, and any model name can be typed into the dropdown.
    """
    api_base = openai_base_url(base_url)
    client = openai.OpenAI(
        base_url=api_base, api_key=api_key or "not-needed", timeout=TIMEOUT, max_retries=0
    )
    try:
        models = list_models(client)
        notice = "" if models else f"The server at {base_url} lists no models."
    except openai.OpenAIError as error:
        models, notice = [], explain(error, base_url)
    if model and model not in models:
        models.insert(0, model)

    def reply(
        message: str,
        history: list[dict[str, Any]],
        system: str,
        chosen_model: str | None,
        temperature: float,
        top_p: float,
        max_tokens: float,
    ) -> Iterator[str]:
        """Stream the answer to ``message``, yielding the text so far.

        Gradio closes this generator when the user presses Stop; leaving the ``with`` block then
        closes the stream's HTTP connection, which is how the server learns to stop generating.
        """
        messages: list[Any] = [{"role": "system", "content": system}] if system.strip() else []
        messages += [{"role": m["role"], "content": as_text(m["content"])} for m in history]
        messages.append({"role": "user", "content": message})
        answer = ""
        try:
            # No model listed when the page was built: the server may have come up since.
            chosen_model = chosen_model or next(iter(list_models(client)), None)
            if not chosen_model:
                raise gr.Error(f"The server at {base_url} lists no models.", title="No model")
            with client.chat.completions.create(
                model=chosen_model,
                messages=messages,
                temperature=temperature,
                top_p=top_p,
                max_tokens=int(max_tokens),
                stream=True,
            ) as stream:
                for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        answer += chunk.choices[0].delta.content
                        yield answer
        except openai.OpenAIError as error:
            raise gr.Error(explain(error, base_url), title="Model server error") from error
        if not answer:
            yield "(The model returned an empty answer.)"

    # analytics_enabled=False: Gradio otherwise reports usage and checks for updates online.
    with gr.Blocks(title=title, analytics_enabled=False) as app:
        if notice:
            gr.Markdown(f"**Warning:** {notice}", elem_id="backend-notice")
        # render=False: ChatInterface places these itself, under the chat; made inside this
        # ``with`` block without it, they would also appear at the top of the page.
        gr.ChatInterface(
            reply,
            chatbot=gr.Chatbot(label="Chat", render=False),
            textbox=gr.Textbox(
                label="Message",
                placeholder="Type a message...",
                show_label=False,
                submit_btn=True,
                stop_btn=True,
                render=False,
            ),
            title=title,
            description=f"Talking to `{base_url}`",
            additional_inputs=[
                gr.Textbox(system_prompt, label="System prompt", lines=2, render=False),
                gr.Dropdown(
                    models,
                    value=models[0] if models else None,
                    label="Model",
                    allow_custom_value=True,
                    render=False,
                ),
                gr.Slider(0, 2, value=temperature, step=0.05, label="Temperature", render=False),
                gr.Slider(0.05, 1, value=top_p, step=0.05, label="Top-p", render=False),
                gr.Slider(16, 4096, value=max_tokens, step=16, label="Max tokens", render=False),
            ],
            additional_inputs_accordion=gr.Accordion("Settings", open=True, render=False),
            analytics_enabled=False,
        )
    return app


def launch_chat_app(
    base_url: str,
    *,
    api_key: str | None = None,
    model: str | None = None,
    host: str = LOCALHOST,
    port: int | None = None,
    auth: tuple[str, str] | None = None,
    share: bool = False,
    root_path: str | None = None,
) -> None:
    """Build the page and serve it until interrupted.

    ``host`` is 127.0.0.1 so only this machine can open the page; ``share=True`` asks Gradio for
    a public link through its relay (it needs the internet, and anyone with the link can chat,
    so pair it with ``auth``). ``root_path`` is the path a proxy serves the page under (on
    JupyterHub and Binder, ``/user/NAME/proxy/PORT``: ``llmlab.webui.links``), which the page
    needs to find its own files and API.
    """
    app = build_chat_app(base_url, api_key=api_key, model=model)
    app.queue().launch(
        server_name=host,
        server_port=port,
        auth=auth,
        share=share,
        inbrowser=False,
        show_error=False,
        footer_links=[],
        theme=THEME,
        root_path=root_path,
    )


def chat_app_server(
    base_url: str,
    *,
    api_key: str | None = None,
    model: str | None = None,
    host: str = LOCALHOST,
    port: int | None = None,
    auth: tuple[str, str] | None = None,
    root_path: str | None = None,
    startup_timeout_s: float = 60,
) -> Server:
    """The chat page as a child process (``python -m llmlab.webui``), started and stopped like
    every other server in the course::

        with chat_app_server(llama.base_url) as page:
            print("Open", page.base_url)

    The API key and the login travel in the environment, not on the command line, where ``ps``
    shows them to every user of the machine. ``root_path`` may hold ``{port}``, filled in with
    the port the page gets (``llmlab.webui.links.root_path_template``).
    """
    command = [sys.executable, "-m", "llmlab.webui", "--base-url", base_url]
    command += ["--host", "{host}", "--port", "{port}"]
    if model:
        command += ["--model", model]
    if root_path:
        command += ["--root-path", root_path]
    env = {"GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    if api_key:
        env["LLMLAB_API_KEY"] = api_key
    if auth:
        env["LLMLAB_WEBUI_AUTH"] = ":".join(auth)
    return Server(
        command,
        name="chat-page",
        model=model,
        host=host,
        port=port,
        health_path=HEALTH_PATH,
        env=env,
        startup_timeout_s=startup_timeout_s,
    )
