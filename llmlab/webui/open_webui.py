"""Open WebUI, the chat page most Ollama users run, in front of the course's servers.

Open WebUI is a large application (about 3 GB installed with its own PyTorch, for document
search and speech) whose dependencies clash with the course's pinned stack, so it gets a
virtual environment of its own in the course's cache folder, installed on request only:

    python -m llmlab.webui.open_webui install     # once: ~2 min, ~3 GB
    python -m llmlab.webui.open_webui serve --ollama-url http://127.0.0.1:11434

Three settings make it work offline and on a small model:

* ``OFFLINE_MODE`` and ``HF_HUB_OFFLINE``: it does not try to download embedding models;
* ``DEFAULT_MODEL_PARAMS={"function_calling": "legacy"}``: since 0.12 it sends its built-in
  tools (memory, web search, notes) with every chat; a small text-only model cannot use them,
  and the course's Ollama-compatible server refuses a request with tools rather than ignore them;
* ``WEBUI_AUTH=False``: one local user, no sign-up page. Leave it out for a shared machine:
  the first account created becomes the administrator.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from llmlab.servers import LOCALHOST, Server
from llmlab.settings import cache_dir

#: The release measured for the course (installed size, start time, the settings above).
OPEN_WEBUI_VERSION = "0.12.4"


def home() -> Path:
    """Where Open WebUI's environment and its data (users, chats) live."""
    return cache_dir() / "open-webui"


def executable() -> Path:
    return home() / "venv" / "bin" / "open-webui"


def installed() -> bool:
    return executable().is_file()


def install(python: str = sys.executable) -> Path:
    """Create Open WebUI's own environment and install it there (once).

    Without a GPU, the CPU build of PyTorch goes in first; otherwise pip would pull the CUDA
    build (several GB more) as Open WebUI's dependency.
    """
    venv = home() / "venv"
    if installed():
        return executable()
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    if sys.platform == "linux" and shutil.which("nvidia-smi") is None:
        # The course's own torch wheel (bin/setup's choice), from a local copy when there is one.
        torch = f"torch=={version('torch')}"
        offline = subprocess.run([*pip, "--no-deps", "--no-index", torch], check=False)
        if offline.returncode != 0:
            cpu_index = "https://download.pytorch.org/whl/cpu"
            subprocess.run([*pip, torch, "--extra-index-url", cpu_index], check=True)
    subprocess.run([*pip, f"open-webui=={OPEN_WEBUI_VERSION}"], check=True)
    return executable()


def secret_key() -> str:
    """The key Open WebUI signs its logins with, kept in its folder (made once, owner-only).

    Without ``WEBUI_SECRET_KEY``, ``open-webui serve`` writes a key file into whatever folder it
    is started from, a notebook's or a repository's.
    """
    path = home() / "secret_key"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(24))
    return path.read_text()


def environment(
    *,
    ollama_url: str | None = None,
    openai_url: str | None = None,
    openai_api_key: str | None = None,
    model: str | None = None,
    auth: bool = False,
) -> dict[str, str]:
    """Open WebUI's settings to reach the course's servers and nothing else.

    ``model`` is the one a new chat starts with (else the user picks one in the page). The
    settings apply at every start (``ENABLE_PERSISTENT_CONFIG=False``): otherwise Open WebUI
    keeps the first start's settings in its database and ignores later changes.
    """
    if not ollama_url and not openai_url:
        raise ValueError("Give ollama_url, openai_url, or both: Open WebUI needs a backend")
    env = {
        "DATA_DIR": str(home() / "data"),
        "WEBUI_SECRET_KEY": secret_key(),
        "OFFLINE_MODE": "true",
        "HF_HUB_OFFLINE": "1",
        "ANONYMIZED_TELEMETRY": "false",
        "SCARF_NO_ANALYTICS": "true",
        "DO_NOT_TRACK": "true",
        "ENABLE_PERSISTENT_CONFIG": "false",
        "WEBUI_AUTH": str(auth).lower(),
        "DEFAULT_MODEL_PARAMS": json.dumps({"function_calling": "legacy"}),
        "ENABLE_OLLAMA_API": str(bool(ollama_url)).lower(),
        "ENABLE_OPENAI_API": str(bool(openai_url)).lower(),
    }
    if model:
        env["DEFAULT_MODELS"] = model
    if ollama_url:
        env["OLLAMA_BASE_URL"] = ollama_url
    if openai_url:
        env["OPENAI_API_BASE_URL"] = openai_url
        env["OPENAI_API_KEY"] = openai_api_key or "none"
    return env


def open_webui_server(
    *,
    ollama_url: str | None = None,
    openai_url: str | None = None,
    openai_api_key: str | None = None,
    model: str | None = None,
    auth: bool = False,
    host: str = LOCALHOST,
    port: int | None = None,
) -> Server:
    """A ``Server`` (not started) for Open WebUI on 127.0.0.1; ``install()`` it first."""
    if not installed():
        raise FileNotFoundError(
            f"Open WebUI is not installed in {home()}. Run "
            "`python -m llmlab.webui.open_webui install` (about 2 minutes and 3 GB)."
        )
    (home() / "data").mkdir(parents=True, exist_ok=True)
    return Server(
        [str(executable()), "serve", "--host", "{host}", "--port", "{port}"],
        name="open-webui",
        host=host,
        port=port,
        env=environment(
            ollama_url=ollama_url,
            openai_url=openai_url,
            openai_api_key=openai_api_key,
            model=model,
            auth=auth,
        ),
        startup_timeout_s=180,
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m llmlab.webui.open_webui", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help=f"install Open WebUI {OPEN_WEBUI_VERSION} (once)")
    serve = commands.add_parser("serve", help="start it in front of the course's servers")
    serve.add_argument("--ollama-url", help="an Ollama API, e.g. http://127.0.0.1:11434")
    serve.add_argument(
        "--openai-url", help="an OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1"
    )
    serve.add_argument("--openai-api-key")
    serve.add_argument("--model", help="the model a new chat starts with")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--auth", action="store_true", help="require accounts (a shared machine)")
    args = parser.parse_args()
    if args.command == "install":
        print(f"Open WebUI installed: {install()}")
        return
    server = open_webui_server(
        ollama_url=args.ollama_url,
        openai_url=args.openai_url,
        openai_api_key=args.openai_api_key,
        model=args.model,
        auth=args.auth,
        port=args.port,
    )
    with server:
        print(f"Open WebUI: {server.base_url} (Ctrl-C stops it)")
        with contextlib.suppress(KeyboardInterrupt):
            server.started_process.wait()


if __name__ == "__main__":
    main()
