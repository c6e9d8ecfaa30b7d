"""Results as tables, files and plots, with the definitions printed next to the figures.

pandas and matplotlib are imported only by the functions that need them (they come with the
course's notebook extras), so the command line and the tests of a server need neither.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from llmlab.bench.records import DEFINITIONS, BenchmarkResult

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

#: The columns a short table shows (``row()`` has them all).
SUMMARY_COLUMNS = (
    "target",
    "concurrency",
    "request rate (req/s)",
    "requests",
    "failed",
    "requests/s",
    "output tokens/s",
    "TTFT p50 (ms)",
    "TTFT p90 (ms)",
    "TTFT p99 (ms)",
    "TPOT p50 (ms)",
    "ITL p50 (ms)",
    "E2E p50 (ms)",
    "E2E p99 (ms)",
)


def to_frame(results: Iterable[BenchmarkResult]) -> pd.DataFrame:
    """One row a result, every figure a column."""
    import pandas as pd

    return pd.DataFrame([result.row() for result in results])


def to_markdown(
    results: Iterable[BenchmarkResult],
    columns: Sequence[str] | None = SUMMARY_COLUMNS,
    *,
    digits: int = 1,
    definitions: bool = True,
) -> str:
    """A Markdown table (``columns=None``: all of them), then what each figure means."""
    rows = [result.row() for result in results]
    lines = [markdown_table(rows, list(columns or (rows[0] if rows else ())), digits=digits)]
    if definitions:
        lines += ["", *(f"- {name}: {meaning}" for name, meaning in DEFINITIONS.items())]
    return "\n".join(lines)


def markdown_table(
    rows: Sequence[Mapping[str, object]],
    columns: Sequence[str],
    *,
    digits: int = 1,
    text_columns: Sequence[str] = ("target",),
) -> str:
    """``rows`` as a Markdown table: numbers right-aligned, a missing or NaN figure an empty
    cell. Written here rather than by ``DataFrame.to_markdown``, which needs ``tabulate``."""
    rule = "|".join("---" if column in text_columns else "---:" for column in columns)
    lines = ["| " + " | ".join(columns) + " |", f"|{rule}|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(column), digits) for column in columns) + " |")
    return "\n".join(lines)


def _cell(value: object, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def write_csv(results: Iterable[BenchmarkResult], path: str | Path) -> Path:
    """Every figure of every result, one row a result."""
    rows = [result.row() for result in results]
    path = Path(path)
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_json(
    results: Iterable[BenchmarkResult], path: str | Path, *, records: bool = False
) -> Path:
    """The results and the definitions; ``records`` adds every request's timings."""
    data = {
        "definitions": DEFINITIONS,
        "results": [result.to_dict(records=records) for result in results],
    }
    path = Path(path)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def plot_sweep(results: Iterable[BenchmarkResult]) -> Figure:
    """Output tokens/s and TTFT (p50 solid, p90 dashed) against concurrency, a line a target.

    Returns the figure (a notebook shows it; ``fig.savefig(...)`` keeps it).
    """
    from matplotlib.figure import Figure

    frame = to_frame(results)
    figure = Figure(figsize=(10, 4), layout="constrained")
    throughput, ttft = figure.subplots(1, 2)
    for target, rows in frame.groupby("target", sort=False):
        rows = rows.sort_values("concurrency")
        x = rows["concurrency"]
        (line,) = throughput.plot(x, rows["output tokens/s"], marker="o", label=target)
        color = line.get_color()
        ttft.plot(x, rows["TTFT p50 (ms)"], marker="o", color=color, label=f"{target} p50")
        ttft.plot(x, rows["TTFT p90 (ms)"], marker="o", color=color, ls="--", label=f"{target} p90")
    levels = sorted(frame["concurrency"].dropna().unique())
    for axes, label in [(throughput, "output tokens/s"), (ttft, "TTFT (ms)")]:
        axes.set_xscale("log", base=2)
        axes.set_xticks(levels, [str(int(level)) for level in levels])
        axes.set_xlabel("requests in flight (concurrency)")
        axes.set_ylabel(label)
        axes.grid(True, alpha=0.3)
        axes.legend()
    throughput.set_title("Throughput")
    ttft.set_title("Time to first token")
    return figure
