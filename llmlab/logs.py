"""Where the course's logs go: one folder in the cache, for servers and for engines run in process.

A server started by the course writes its log to a file (``llmlab.servers``). An engine run in
the notebook's own process, such as vLLM's offline ``LLM``, writes to the notebook instead: its
import, its C++ code and the worker processes it starts print warnings and progress lines that
bury the lesson's output. ``output_to_log`` sends all of that to a file, the same way.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from llmlab.settings import cache_dir

#: Log files opened by ``output_to_log``, kept open: a library that set up its logging inside the
#: block (vLLM does at import) goes on writing to the file it was given.
_open: dict[Path, TextIO] = {}


def log_dir() -> Path:
    """``logs/`` in the cache folder."""
    path = cache_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def output_to_log(name: str) -> Iterator[Path]:
    """Inside the block, everything written to stdout and stderr goes to ``logs/NAME.log``:
    Python's ``print``, warnings and progress bars, C and C++ code writing to the file
    descriptors, and processes started meanwhile (they keep writing there). Yields the path."""
    path = log_dir() / f"{name}.log"
    log = _open.get(path) or _open.setdefault(path, path.open("a", buffering=1))
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            yield path
    finally:
        log.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
