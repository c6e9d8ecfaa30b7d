"""Each notebook's peak memory: its kernel and every process it starts, sampled while it runs.

Run by hand from the repository root (not a test: it executes every chapter, about 20 minutes):

    .venv/bin/python -m benchmarks.chapter_memory [NOTEBOOK ...] [--write-readme]

Each notebook runs with nbclient, as ``bin/execute`` runs it, but its outputs are not saved.
Twice a second the script adds up the proportional set size (PSS) of the kernel's whole process
tree: the kernel, the servers it started (vLLM and its engine, llama-servers, the router, the
chat page, Chromium) and their children. PSS gives each process its share of a page that several
map (the Python libraries, a model file two servers read), so the sum is the memory the chapter
really holds; an RSS sum would count those pages once per process. Where PSS is not available
(outside Linux) the script adds up USS, what each process alone holds, which undercounts.

``--write-readme`` writes the figures into the README's chapter table ("needs"), with whether
the chapter fits Binder's 2 GB.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

from llmlab.local.profiling import process_memory
from llmlab.settings import cache_dir

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb"))
BINDER_BYTES = 2e9  # mybinder.org's memory limit per session: 2 GB
SAMPLE_EVERY_S = 0.5


@dataclass
class Peak:
    """The largest sum seen, and which processes made it up."""

    bytes: float = 0.0
    processes: int = 0
    biggest: str = ""
    cell: int = -1  # the notebook's cell running then (its index among all cells)


def tree_bytes(pid: int) -> tuple[float, int, str]:
    """PSS (else USS) of ``pid`` and all its descendants, how many they are, and the largest."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0, 0, ""
    total, largest, name = 0.0, 0.0, ""
    for process in tree:
        try:
            memory = process_memory(process.pid)
            size = memory.pss_bytes if memory.pss_bytes is not None else memory.uss_bytes
            label = process.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied, FileNotFoundError):
            continue  # it ended (or is not ours) between the listing and the reading
        total += size
        if size > largest:
            largest, name = size, label
    return total, len(tree), name


def kernel_pid(client: NotebookClient) -> int | None:
    """The kernel's process id, once nbclient has started it (a local kernel)."""
    manager = getattr(client, "km", None)
    provisioner = getattr(manager, "provisioner", None) if manager else None
    return getattr(provisioner, "pid", None)


def measure(path: Path, timeout_s: int = 900) -> Peak:
    """Run ``path`` from its own folder and return the peak of its kernel's process tree."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout_s, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})  # fmt: skip
    peak, done, running = Peak(), threading.Event(), {"cell": -1}

    def on_cell_start(cell: nbformat.NotebookNode, cell_index: int) -> None:
        running["cell"] = cell_index

    client.on_cell_start = on_cell_start

    def sample() -> None:
        while not done.wait(SAMPLE_EVERY_S):
            pid = kernel_pid(client)
            if pid is None:
                continue
            total, count, biggest = tree_bytes(pid)
            if total > peak.bytes:
                peak.bytes, peak.processes, peak.biggest = total, count, biggest
                peak.cell = running["cell"]

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        client.execute()
    finally:
        done.set()
        sampler.join()
    return peak


def readme_needs(peak_bytes: float) -> str:
    fits = "fits Binder's 2 GB" if peak_bytes <= BINDER_BYTES else "more than Binder's 2 GB"
    return f"{peak_bytes / 1e9:.1f} GB at peak, measured ({fits})"


def write_readme(peaks: dict[str, float]) -> None:
    """Put each measured chapter's peak into the "needs" column, in place of its RAM figure."""
    readme = ROOT / "README.md"
    lines = readme.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        match = re.match(r"\| \[(\d\d) · .*?\]\(chapters/([^)]+)\)", line)
        if not match or match.group(2) not in peaks:
            continue
        cells = line.split(" | ")
        needs = re.sub(r"(\d+ GB RAM|[\d.]+ GB at peak, measured \([^)]*\))",
                       readme_needs(peaks[match.group(2)]), cells[2], count=1)  # fmt: skip
        lines[i] = " | ".join([*cells[:2], needs, *cells[3:]])
    readme.write_text("".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapter")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    paths = [path.resolve() for path in args.notebooks] or NOTEBOOKS
    results: dict[str, float] = {}
    print(f"{'notebook':28s} {'peak (GB)':>10s} {'processes':>10s}  largest process  cell  Binder")
    out = cache_dir() / "chapter_memory.json"
    for path in paths:
        started = time.monotonic()
        try:
            peak = measure(path)
        except Exception as error:  # noqa: BLE001 - say which notebook, measure the others
            print(f"{path.name:28s} FAILED: {type(error).__name__}: {error}", flush=True)
            continue
        results[path.name] = peak.bytes
        out.write_text(json.dumps(results, indent=2))  # after each: a failure keeps the rest
        fits = "fits" if peak.bytes <= BINDER_BYTES else "too big"
        took = time.monotonic() - started
        print(f"{path.name:28s} {peak.bytes / 1e9:10.2f} {peak.processes:10d}  "
              f"{peak.biggest:15s}  {peak.cell:4d}  {fits}   ({took:.0f} s)",
              flush=True)  # fmt: skip
    print("wrote", out)
    if args.write_readme:
        write_readme(results)
        print("updated README.md")


if __name__ == "__main__":
    main()
