"""The course as a website (bin/site): built from the committed notebooks, served, and read page
by page in a real Chromium. Each page must show its title, its code, figures that loaded, and
links that lead somewhere; nothing may be fetched from outside the site."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urldefrag, urljoin

import httpx
import nbformat
import pytest
import yaml

from llmlab.servers import Server
from llmlab.webui.browser import browser_page, screenshot

pytestmark = [pytest.mark.server, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "site" / "html"
#: Every page, and the title it must show.
PAGES = {
    "README.html": "Running LLMs on your own hardware",  # the landing page: the course map
    "chapters/01_transformers.html": "Chapter 01",
    "chapters/02_batching.html": "Chapter 02",
    "chapters/03_vllm.html": "Chapter 03",
    "chapters/04_llamacpp.html": "Chapter 04",
    "chapters/05_ollama.html": "Chapter 05",
    "chapters/06_fastapi.html": "Chapter 06",
    "chapters/07_web_ui.html": "Chapter 07",
    "chapters/08_scaling_out.html": "Chapter 08",
    "solutions/compare_deployments.html": "Exercise 3",
}
#: The landing page and a chapter, as the test saw them; with LLMLAB_UPDATE_SCREENSHOTS=1 they
#: replace the README's pictures of the site (book/screenshots/: another machine's fonts would
#: change their bytes on every run).
SCREENSHOTS = (
    ROOT / "book" / "screenshots"
    if os.environ.get("LLMLAB_UPDATE_SCREENSHOTS") == "1"
    else ROOT / "_build" / "site" / "screenshots"
)


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    built = subprocess.run([str(ROOT / "bin" / "site"), "--build-only"], capture_output=True,
                           text=True, timeout=900)  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    command = [sys.executable, "-m", "http.server", "--bind", "{host}", "{port}",
               "--directory", str(HTML)]  # fmt: skip
    with Server(command, name="course-site", health_path="/index.html") as server:
        yield server.base_url + "/"


@pytest.fixture(scope="module")
def visits(site: str) -> dict[str, dict]:
    """What Chromium saw on each page: title, code cells, images, links, outside requests."""
    seen = {}
    with browser_page(timeout_s=60) as page:
        outside: list[str] = []
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(site) else None)
        for path in PAGES:
            outside.clear()
            page.goto(urljoin(site, path), wait_until="load")
            seen[path] = {
                "title": page.locator("h1").first.inner_text(),
                "code cells": page.locator("div.cell div.cell_input").count(),
                "images": page.eval_on_selector_all(
                    "article img", "imgs => imgs.map(i => [i.src, i.naturalWidth])"
                ),
                "links": page.eval_on_selector_all("article a[href]", "as => as.map(a => a.href)"),
                "sections": page.locator("article h2").all_inner_texts(),
                "launch": page.eval_on_selector_all(
                    ".dropdown-launch-buttons a[href]", "as => as.map(a => a.href)"
                ),
                "outside": list(outside),
            }
            if path in ("README.html", "chapters/03_vllm.html"):
                screenshot(page, SCREENSHOTS / f"{Path(path).stem}.png")
    return seen


def test_the_landing_page_lists_every_notebook_in_order(site: str):
    home = httpx.get(urljoin(site, "README.html")).text
    order = [home.find(f'href="{path}') for path in list(PAGES)[1:]]
    assert -1 not in order and order == sorted(order), "the sidebar lists every notebook in order"


@pytest.mark.parametrize("path", PAGES)
def test_each_page_shows_its_title_code_figures_and_nothing_from_outside(visits, path):
    seen = visits[path]
    assert PAGES[path] in seen["title"], (path, seen["title"])
    assert seen["outside"] == [], f"{path} fetched from outside the site: {seen['outside']}"
    broken = [src for src, width in seen["images"] if width == 0]
    assert broken == [], f"{path}: images that did not load: {broken}"
    if path != "README.html":
        notebook = nbformat.read(ROOT / Path(path).with_suffix(".ipynb"), as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        figures = sum("image/png" in output.get("data", {}) for c in code for output in c.outputs)
        assert seen["code cells"] == len(code), f"{path} shows {seen['code cells']} code cells"
        assert len(seen["images"]) >= figures, f"{path} shows {len(seen['images'])} of {figures}"
    if path.startswith("chapters/"):  # each ends with its exercise and a "Try it" list
        assert any(title.startswith("Exercise") for title in seen["sections"]), path
        assert any(title.startswith("Try it") for title in seen["sections"]), path


@pytest.mark.parametrize("path", PAGES)
def test_every_link_inside_the_site_leads_to_a_page(site: str, visits, path):
    inside = {urldefrag(link).url for link in visits[path]["links"] if link.startswith(site)}
    missing = [link for link in sorted(inside) if httpx.get(link).status_code != 200]
    assert missing == [], f"{path} links to pages that do not exist: {missing}"


@pytest.mark.parametrize("path", [path for path in PAGES if path != "README.html"])
def test_each_notebook_opens_in_jupyterlab_on_binder_and_on_colab_from_its_header(visits, path):
    notebook = Path(path).with_suffix(".ipynb").as_posix()
    assert visits[path]["launch"] == [
        f"https://mybinder.org/v2/gh/llmlab-course/llmlab/main?urlpath=lab/tree/{notebook}",
        f"https://colab.research.google.com/github/llmlab-course/llmlab/blob/main/{notebook}",
    ]


def test_the_publishing_workflow_builds_what_this_test_reads():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "site.yml").read_text())
    steps = workflow["jobs"]["build"]["steps"]
    assert {"run": "bin/site --build-only"} in steps
    upload = next(step for step in steps if "upload-pages-artifact" in step.get("uses", ""))
    assert ROOT / upload["with"]["path"] == HTML
