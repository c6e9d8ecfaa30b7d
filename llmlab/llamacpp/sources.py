"""llama.cpp's source, as the ``llama-cpp-python`` source releases on PyPI carry it.

Two of them serve the course: one to build the tools from (``llmlab.llamacpp.build``), an older
one for llama.cpp's built chat page (``llmlab.llamacpp.webui``). Both come from the offline
classroom kit (``llmlab.kit``) when ``$LLMLAB_KIT`` names one, and from PyPI otherwise.

The kit's copy is opened where it lies rather than fetched with ``pip download``: for a source
release pip also prepares its metadata, which needs the release's build tools from an index,
and a kit machine has none.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from llmlab.errors import LLMLabError

#: The offline kit's folder (``llmlab.kit``); its ``packages/`` holds the source releases.
KIT_ENV = "LLMLAB_KIT"


class SourceReleaseError(LLMLabError, RuntimeError):
    """A source release is in neither the kit nor reachable on PyPI; the message says which."""


def archive_name(requirement: str) -> str:
    """The file of ``name==version``'s source release, as pip names it: ``name_x-1.0.tar.gz``."""
    name, _, version = requirement.partition("==")
    return f"{name.replace('-', '_')}-{version}.tar.gz"


def source_release(requirement: str, scratch: Path) -> Path:
    """The ``.tar.gz`` of ``requirement`` (``name==version``): the kit's, else downloaded by pip
    into ``scratch``."""
    kit = os.environ.get(KIT_ENV)
    if kit:
        held = Path(kit).expanduser() / "packages" / archive_name(requirement)
        if held.is_file():
            return held
    download = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
         requirement, "--dest", str(scratch)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    archive = scratch / archive_name(requirement)
    if download.returncode != 0 or not archive.is_file():
        where = f"in neither the kit ({kit}) nor" if kit else "not"
        raise SourceReleaseError(
            f"{requirement} is {where} on PyPI as pip sees it:\n{download.stderr.strip()[-800:]}"
        )
    return archive
