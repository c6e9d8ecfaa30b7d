"""llama.cpp's own chat page, for a llama-server built without it.

A llama-server from a llama.cpp release or Homebrew serves a chat page at ``/``, compiled into
the binary. The course builds llama-server from the llama-cpp-python source release (chapter
04), and newer source releases no longer carry the built page: llama.cpp's build downloads it,
or builds it with npm from sources that are not in the release either. So here ``/`` answers
404, and this module supplies the page the way llama-server allows for any build:
``llama-server --path DIR`` serves the files of ``DIR``, ``index.html`` at ``/``.

The page comes from llama-cpp-python 0.3.19, the newest source release on PyPI that still
carries llama.cpp's built page (``tools/server/public/index.html.gz``): the Svelte chat app
llama.cpp ships today. It is downloaded once (50 MB, from PyPI; or taken from the offline
kit) and only the page is kept.

    python -m llmlab.llamacpp.webui      # prints the folder to pass to --path
"""

from __future__ import annotations

import gzip
import tarfile
import tempfile
from pathlib import Path

from llmlab.errors import LLMLabError
from llmlab.llamacpp.sources import SourceReleaseError, source_release
from llmlab.settings import cache_dir

#: The source release the page is taken from, and where the page sits inside it.
SOURCE = "llama-cpp-python==0.3.19"
MEMBER = "vendor/llama.cpp/tools/server/public/index.html.gz"


class WebUIError(LLMLabError, RuntimeError):
    """The page could not be fetched (no network to PyPI, or the release changed)."""


def webui_dir() -> Path:
    """The folder with llama.cpp's ``index.html``, fetched on first use: pass it to ``--path``."""
    folder = cache_dir() / "llama-webui" / SOURCE.split("==")[1]
    page = folder / "index.html"
    if not page.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        page.write_bytes(gzip.decompress(_download_page()))
    return folder


def _download_page() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            archive = source_release(SOURCE, Path(tmp))
        except SourceReleaseError as error:
            raise WebUIError(
                f"{error}\nWith a llama-server that has the page built in (a llama.cpp release, "
                "Homebrew), nothing is needed."
            ) from error
        with tarfile.open(archive) as tar:
            top = tar.getnames()[0].split("/")[0]
            member = tar.extractfile(f"{top}/{MEMBER}")
            if member is None:
                raise WebUIError(f"{SOURCE} has no {MEMBER}")
            return member.read()


if __name__ == "__main__":
    print(webui_dir())
