"""The chat page from a remote kernel: the link a student opens, and the proxy path driven for
real (JupyterLab with jupyter-server-proxy, the Gradio app under its prefix, headless Chromium).

A JupyterHub (Binder runs one) starts each user's Jupyter server under ``/user/NAME/`` and gives
it ``JUPYTERHUB_SERVICE_PREFIX``, ``JUPYTERHUB_SERVICE_URL`` and ``JUPYTERHUB_API_TOKEN``; the
kernel inherits them. Here a real JupyterLab runs under such a prefix with those variables, so
everything the student's browser would go through is real but the hub's login in front.
"""

from __future__ import annotations

import os
import secrets
import sys

import pytest

from llmlab.servers import Server
from llmlab.servers.llamacpp import llama_server
from llmlab.webui.app import chat_app_server
from llmlab.webui.browser import ask_gradio, in_browser
from llmlab.webui.links import browser_url, page_link, root_path_template

PREFIX = "/user/ada/"


def test_off_a_hub_the_page_is_served_at_its_root_and_linked_directly():
    page = Server(["true"], name="page", port=7861)
    assert root_path_template({}) is None
    assert page_link(page, {}) == browser_url(page, {}) == "http://127.0.0.1:7861/"


def test_on_a_hub_the_link_goes_through_the_users_proxy():
    page = Server(["true"], name="page", port=7861)
    hub = {"JUPYTERHUB_SERVICE_PREFIX": PREFIX, "JUPYTERHUB_API_TOKEN": "t",
           "JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888/user/ada/"}  # fmt: skip
    assert root_path_template(hub) == "/user/ada/proxy/{port}"
    assert page_link(page, hub) == "/user/ada/proxy/7861/"  # relative to the hub's address
    assert browser_url(page, hub) == "http://127.0.0.1:8888/user/ada/proxy/7861/?token=t"


@pytest.mark.server
@pytest.mark.browser
@pytest.mark.notebook  # it starts a Jupyter server
def test_the_chat_page_answers_through_jupyter_server_proxy(tmp_path):
    token = secrets.token_urlsafe(16)
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip", "{host}",
               "--port", "{port}", f"--ServerApp.base_url={PREFIX}",
               f"--ServerApp.token={token}", f"--ServerApp.root_dir={tmp_path}"]  # fmt: skip
    if os.geteuid() == 0:
        command.append("--allow-root")
    lab = Server(command, name="jupyterlab", startup_timeout_s=180,
                 health_path=f"{PREFIX}api/status?token={token}")  # fmt: skip
    with llama_server() as llama, lab:
        hub = {"JUPYTERHUB_SERVICE_PREFIX": PREFIX, "JUPYTERHUB_API_TOKEN": token,
               "JUPYTERHUB_SERVICE_URL": f"http://0.0.0.0:{lab.port}{PREFIX}"}  # fmt: skip
        with chat_app_server(llama.base_url, root_path=root_path_template(hub)) as page:
            url = browser_url(page, hub)
            assert url.startswith(f"{lab.base_url}{PREFIX}proxy/{page.port}/")
            answer = in_browser(lambda tab: ask_gradio(tab, url, "What is the capital of France?"))
    assert answer.strip()  # its words depend on the sampling and the CPU
