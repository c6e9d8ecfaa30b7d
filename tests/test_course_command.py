"""The README's first command, `bin/course`, opens JupyterLab on 127.0.0.1, as root (containers,
cloud VMs, Colab-style machines) and as a normal user; `bin/lab` is its second half."""

import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from llmlab.servers import free_port
from llmlab.servers.tree import stop_tree

pytestmark = [pytest.mark.server, pytest.mark.notebook]

ROOT = Path(__file__).resolve().parents[1]
NOBODY = pwd.getpwnam("nobody")
# A user who is not root, allowed only to look into folders it could not otherwise enter (this
# machine's Python may live in /root): JupyterLab goes by the user id, which is not 0.
AS_NOBODY = [
    "setpriv", f"--reuid={NOBODY.pw_uid}", f"--regid={NOBODY.pw_gid}", "--clear-groups",
    "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
]  # fmt: skip


def open_course(command: str, home: Path, *, as_nobody: bool = False) -> tuple[dict, str]:
    """Run ``bin/<command>`` until JupyterLab answers on its port: its /api answer, its output."""
    port = free_port()
    runtime = home / "jupyter"
    runtime.mkdir(parents=True, exist_ok=True)
    env = os.environ | {
        "JUPYTER_RUNTIME_DIR": str(runtime / "runtime"),
        "JUPYTER_CONFIG_DIR": str(runtime / "config"),
    }
    if as_nobody:  # (not for bin/course: its setup would find an empty cache, and build again)
        env["HOME"] = str(home)
        os.chown(home, NOBODY.pw_uid, NOBODY.pw_gid)
        os.chown(runtime, NOBODY.pw_uid, NOBODY.pw_gid)
    log_path = home / f"{command}.log"
    with log_path.open("wb") as log:
        lab = subprocess.Popen(
            [
                *(AS_NOBODY if as_nobody else []),
                str(ROOT / "bin" / command),
                "--no-browser",
                f"--port={port}",
            ],  # fmt: skip
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 600  # bin/course checks the setup first
        while True:
            assert lab.poll() is None, f"it exited with code {lab.returncode}"
            assert time.monotonic() < deadline, "JupyterLab did not answer"
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.5)  # not listening yet
        listening = [
            c.laddr.ip
            for c in psutil.Process(lab.pid).net_connections()
            if c.status == psutil.CONN_LISTEN
        ]
        assert listening and set(listening) <= {"127.0.0.1"}, listening
        return answer.json(), log_path.read_text(errors="replace")
    finally:
        stop_tree(lab.pid, popen=lab)
        print(log_path.read_text(errors="replace"))  # shown when the test fails


def test_bin_course_opens_jupyterlab_for_this_user(tmp_path: Path):
    status, said = open_course("course", tmp_path)
    assert "version" in status
    assert "[setup]" in said and "Jupyter Server" in said
    assert ("--allow-root" in said) == (os.geteuid() == 0)


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="starting it as another user needs root and setpriv (util-linux)",
)
def test_bin_lab_opens_jupyterlab_for_a_normal_user(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    tmp_path.chmod(0o755)
    tried = subprocess.run(
        [*AS_NOBODY, sys.executable, "-c", "import jupyterlab"], capture_output=True, check=False
    )
    if tried.returncode:
        pytest.skip(f"cannot run this Python as another user: {tried.stderr.decode()[-200:]}")
    status, said = open_course("lab", home, as_nobody=True)
    assert "version" in status
    assert "Jupyter Server" in said and "--allow-root" not in said
