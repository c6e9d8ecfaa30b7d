"""Where a browser finds a page that a server in the kernel serves on 127.0.0.1.

On a laptop the browser and the kernel share a machine, and ``http://127.0.0.1:PORT/`` works.
Elsewhere the kernel runs on another machine, and each platform has its own way in:

* **JupyterHub and Binder** (Binder runs a JupyterHub): jupyter-server-proxy, installed with the
  course's ``notebook`` extra, forwards ``/user/NAME/proxy/PORT/`` on the hub's address to the
  kernel's port. The page must know that prefix to link its own files and API (Gradio's
  ``root_path``). The kernel learns the prefix, its server's address and a token from the
  variables the hub gives the server it runs in (``JUPYTERHUB_SERVICE_PREFIX``,
  ``JUPYTERHUB_SERVICE_URL``, ``JUPYTERHUB_API_TOKEN``).
* **Colab**: the notebook's front end asks Colab for an address that forwards to the port
  (``google.colab.kernel.proxyPort``), served at its root.

``root_path_template`` goes to ``chat_app_server(root_path=...)``; ``page_link`` is the link to
print for the student; ``browser_url`` is where a browser on the kernel's own machine (the
chapter's headless Chromium) opens the same page.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from llmlab.servers import LOCALHOST, Server


def hub_prefix(environ: Mapping[str, str] | None = None) -> str | None:
    """The hub's path prefix for this user's server (``/user/ada/``), or None off a hub."""
    prefix = (os.environ if environ is None else environ).get("JUPYTERHUB_SERVICE_PREFIX")
    return prefix if prefix else None


def root_path_template(environ: Mapping[str, str] | None = None) -> str | None:
    """The path a page on port ``{port}`` is served under through jupyter-server-proxy, with
    ``{port}`` left for the server to fill in; None where the page is served at its root."""
    prefix = hub_prefix(environ)
    return f"{prefix.rstrip('/')}/proxy/{{port}}" if prefix else None


def page_link(server: Server, environ: Mapping[str, str] | None = None) -> str:
    """The address the student opens in their own browser."""
    prefix = hub_prefix(environ)
    if prefix:  # relative to the hub's address, which the notebook page already has
        return f"{prefix.rstrip('/')}/proxy/{server.port}/"
    if "google.colab" in sys.modules:  # pragma: no cover - only on Colab
        from google.colab.output import eval_js

        return str(eval_js(f"google.colab.kernel.proxyPort({server.port})"))
    return f"{server.base_url}/"


def browser_url(server: Server, environ: Mapping[str, str] | None = None) -> str:
    """The address a browser on the kernel's machine opens: on a hub, through the user's own
    Jupyter server and its proxy (the page's links carry the prefix), with the hub's token."""
    env = os.environ if environ is None else environ
    service_url, token = env.get("JUPYTERHUB_SERVICE_URL"), env.get("JUPYTERHUB_API_TOKEN")
    if not (hub_prefix(env) and service_url):
        return f"{server.base_url}/"
    parts = urlsplit(service_url)
    host = LOCALHOST if parts.hostname in (None, "0.0.0.0", "") else parts.hostname
    netloc = f"{host}:{parts.port}" if parts.port else host
    path = f"{parts.path.rstrip('/')}/proxy/{server.port}/"
    return urlunsplit((parts.scheme or "http", netloc, path, f"token={token}" if token else "", ""))
