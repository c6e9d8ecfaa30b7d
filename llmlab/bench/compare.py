"""Compare ways of serving a model on one workload, one backend at a time.

Each backend is started, warmed up with one request that is not counted, swept over the
concurrency levels with the harness (``sweep``), and stopped before the next one starts: two
model servers at once would share the same cores and spoil both figures. A backend that cannot
start or run is a result too (its reason, in one line), and the others still run.

Exercise 3 (``solutions/compare_deployments.py``) defines the backends: how to start each
server and point a target at it. This module runs them and writes the report.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

from llmlab.bench.records import DEFINITIONS, BenchmarkResult, json_ready
from llmlab.bench.report import markdown_table, plot_sweep, write_csv
from llmlab.bench.runner import sweep
from llmlab.bench.targets import Target
from llmlab.sizing.bandwidth import ceiling_tokens_per_s

#: Fewer requests than this per level would make a noisy figure (the harness's own minimum).
MIN_REQUESTS = 8
#: The table's columns, in order.
COLUMNS = ["backend", "concurrency", "requests", "failed", "output tokens/s", "tokens/request",
           "TTFT p50 (ms)", "TTFT p90 (ms)", "TPOT p50 (ms)", "E2E p50 (ms)",
           "ceiling tok/s", "of ceiling", "note"]  # fmt: skip

#: What a backend is started with (exercise 3's ``Options``).
Settings = TypeVar("Settings")


@dataclass(frozen=True)
class Running:
    """A started backend: the target the harness sends requests to, and how it is set up."""

    target: Target
    setup: str
    #: The weights one token reads, as this backend holds them (``llmlab.sizing.bandwidth``).
    bytes_per_token: float | None = None


@dataclass(frozen=True)
class Backend(Generic[Settings]):
    """A deployment method: a name for the command line, and how to start it.

    ``start`` is a context manager that starts the backend, yields a ``Running`` and stops it
    on exit; anything it raises while starting means the backend could not start.
    """

    name: str
    description: str
    start: Callable[[Settings], AbstractContextManager[Running]]
    #: Serves one request at a time (no server, no batching): measured at concurrency 1 only.
    one_at_a_time: bool = False


@dataclass
class BackendRun:
    """What happened to one backend: its results, or why it did not run."""

    backend: str
    label: str = ""
    setup: str = ""
    ready_after_s: float | None = None
    results: list[BenchmarkResult] = field(default_factory=list)
    bytes_per_token: float | None = None
    #: Why it could not start or run (one line), and the whole message (a server's log tail).
    skipped: str | None = None
    detail: str | None = None


@dataclass
class Comparison:
    """Every backend's run, in the order they ran, and what they ran with.

    ``workload`` is the sentence the report opens with (the model, the requests); ``settings``
    go into the JSON as they are."""

    levels: tuple[int, ...]
    max_tokens: int
    runs: list[BackendRun]
    machine: str
    workload: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    #: The machine's memory read bandwidth (bytes/s), measured before the backends ran.
    bandwidth: float | None = None

    def ceiling(self, run: BackendRun) -> float | None:
        """The most tokens/s one request can get from ``run``'s backend on this machine:
        bandwidth over the bytes of weights it reads per token."""
        if self.bandwidth is None or run.bytes_per_token is None:
            return None
        return ceiling_tokens_per_s(run.bytes_per_token, self.bandwidth)

    @property
    def results(self) -> list[BenchmarkResult]:
        return [result for run in self.runs for result in run.results]

    @property
    def skipped(self) -> dict[str, str]:
        return {run.backend: run.skipped for run in self.runs if run.skipped}

    def table(self) -> list[dict[str, object]]:
        """One row per backend that ran and concurrency level. A level a backend cannot be
        loaded at is a row that says so, not a figure."""
        rows: list[dict[str, object]] = []
        for run in self.runs:
            if run.skipped:
                continue
            # A sweep's results each have a concurrency (only a request-rate run has none).
            measured = {r.concurrency: r for r in run.results if r.concurrency is not None}
            for level in sorted(set(self.levels) | set(measured)):
                result = measured.get(level)
                if result is None:
                    note = "not measured: serves one request at a time"
                    rows.append({"backend": run.label, "concurrency": level, "note": note})
                else:
                    rows.append(self._row(run, result))
        return rows

    def _row(self, run: BackendRun, result: BenchmarkResult) -> dict[str, object]:
        figures = result.row()
        per_request = result.output_tokens / result.completed if result.completed else None
        short = per_request is not None and per_request < self.max_tokens
        ceiling = self.ceiling(run) if result.concurrency == 1 else None
        return {
            "backend": run.label,
            "concurrency": result.concurrency,
            "requests": result.completed + result.failed,
            "failed": result.failed,
            "output tokens/s": result.output_throughput,
            "tokens/request": per_request,
            **{name: figures[name] for name in COLUMNS[6:10]},
            "ceiling tok/s": ceiling,
            "of ceiling": _share(figures["TPOT p50 (ms)"], ceiling),
            "note": "answers stopped early (no ignore_eos)" if short else "",
        }

    def markdown(self) -> str:
        """The table, the backends' setup, what was skipped and why, and the definitions."""
        lines = [
            "# Deployment methods compared",
            "",
            f"Machine: {self.machine}. {self.workload}".strip(),
            "",
            markdown_table(self.table(), COLUMNS, text_columns=("backend", "note")),
            "",
            "## Backends",
            "",
        ]
        for run in self.runs:
            if not run.skipped:
                ready = f", ready after {run.ready_after_s:.0f} s" if run.ready_after_s else ""
                read = (f"; reads {run.bytes_per_token / 2**20:.0f} MiB of weights per token"
                        if run.bytes_per_token else "")  # fmt: skip
                lines.append(f"- **{run.label}** (`{run.backend}`): {run.setup}{ready}{read}")
        lines += ["", "## Skipped", ""]
        lines += [f"- `{name}`: {why}" for name, why in self.skipped.items()] or ["- none"]
        lines += ["", "## What the figures mean (vLLM's serving-benchmark definitions)", ""]
        lines += [f"- {name}: {meaning}" for name, meaning in DEFINITIONS.items()]
        lines.append("- tokens/request: output tokens / completed requests (as each server counts)")
        if self.bandwidth:
            lines.append(
                f"- ceiling tok/s: at 1 request in flight, this machine's memory read bandwidth "
                f"({self.bandwidth / 1e9:.1f} GB/s, measured) over the bytes of weights the "
                "backend reads per token; of ceiling: one request's decoding speed (1000 / TPOT "
                "p50 in ms, the first token's prefill left out) as a share of it"
            )
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, object]:
        options = {"levels": list(self.levels), "max_tokens": self.max_tokens, **self.settings}
        backends = [
            {
                "name": run.backend,
                "label": run.label,
                "setup": run.setup,
                "ready_after_s": run.ready_after_s,
                "bytes_per_token": run.bytes_per_token,
                "skipped": run.skipped,
                "detail": run.detail,
                "results": [result.to_dict() for result in run.results],
            }
            for run in self.runs
        ]
        return {"machine": self.machine, "options": options, "backends": backends,
                "bandwidth_bytes_per_s": self.bandwidth, "definitions": DEFINITIONS}  # fmt: skip


async def run_backends(
    backends: Sequence[Backend[Settings]],
    settings: Settings,
    levels: Sequence[int],
    *,
    progress: bool = True,
) -> list[BackendRun]:
    """Start, warm up, sweep and stop each backend in turn; never two at once."""
    runs = []
    for backend in backends:
        print(f"\n== {backend.name}: {backend.description}", flush=True)
        runs.append(await _run_one(backend, settings, levels, progress))
    return runs


async def _run_one(
    backend: Backend[Settings], settings: Settings, levels: Sequence[int], progress: bool
) -> BackendRun:
    """One backend from start to stop. A failure to start or run is recorded, not raised."""
    run = BackendRun(backend.name)
    with ExitStack() as stack:
        started = time.perf_counter()
        try:
            # Blocking on purpose: nothing else may run meanwhile, and Ctrl-C still stops it.
            running = stack.enter_context(backend.start(settings))
        except Exception as error:  # noqa: BLE001 - any reason to not start is a result
            return _skipped(run, "could not start", error)
        run.ready_after_s = time.perf_counter() - started
        run.label, run.setup = running.target.name, running.setup
        run.bytes_per_token = running.bytes_per_token
        try:
            run.results = await sweep(
                running.target,
                [1] if backend.one_at_a_time else levels,
                min_requests=MIN_REQUESTS,
                progress=progress,
            )
        except Exception as error:  # noqa: BLE001
            return _skipped(replace(run, results=[]), "failed while running", error)
    return run


def _share(tpot_ms: object, ceiling: float | None) -> str | None:
    """One request's decoding speed (1 / TPOT: each step reads every weight once) as a share of
    the bandwidth ceiling; None without both figures."""
    if not ceiling or not isinstance(tpot_ms, int | float) or not tpot_ms > 0:
        return None
    return f"{1000 / tpot_ms / ceiling:.0%}"


def _skipped(run: BackendRun, what: str, error: BaseException) -> BackendRun:
    """The run with a one-line reason: the error's first line, and the last line of a server's
    log where the message ends with one (that is where a server says what went wrong)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reason = f"{what}: {type(error).__name__}"
    if lines:
        reason += f": {lines[0]}" + (f" [...] {lines[-1]}" if len(lines) > 1 else "")
    print(reason, file=sys.stderr)
    return replace(run, skipped=reason, detail=str(error))


def machine_summary() -> str:
    """Cores, memory and accelerator, for the report's first line."""
    from llmlab.sizing.hardware import detect_hardware

    hardware = detect_hardware()
    accelerator = hardware.name if hardware.device != "cpu" else "no GPU"
    return (
        f"{hardware.cpu_count} CPU cores ({platform.machine()}), "
        f"{hardware.total_memory_gib:.0f} GiB, {accelerator}"
    )


def write_report(comparison: Comparison, folder: Path) -> dict[str, Path]:
    """Write results.md, results.csv, results.json, throughput.png and ttft.png into
    ``folder``; return their paths (no plots when nothing ran)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = ["results.md", "results.csv", "results.json", "throughput.png", "ttft.png"]
    paths = {name: folder / name for name in names}
    paths["results.md"].write_text(comparison.markdown())
    write_csv(comparison.results, paths["results.csv"])
    paths["results.json"].write_text(json.dumps(json_ready(comparison.to_dict()), indent=2) + "\n")
    if comparison.results:
        _save_plots(comparison, paths["throughput.png"], paths["ttft.png"])
    else:
        del paths["throughput.png"], paths["ttft.png"]  # nothing ran: nothing to plot
    return paths


def _save_plots(comparison: Comparison, throughput_png: Path, ttft_png: Path) -> None:
    """The harness's two panels, saved one a file."""
    figure = plot_sweep(comparison.results)
    throughput, ttft = figure.axes
    colors = {line.get_label(): line.get_color() for line in throughput.get_lines()}
    for run in comparison.runs:
        ceiling = comparison.ceiling(run)
        if ceiling and run.label in colors:  # what one request could get: memory's limit
            throughput.axhline(ceiling, color=colors[run.label], ls=":", lw=1.2,
                               label=f"{run.label}: 1-request ceiling")  # fmt: skip
    throughput.set_title(
        f"Output tokens/s ({comparison.max_tokens} tokens a request), higher is better"
    )
    ttft.set_title("Time to first token, p50 solid, p90 dashed; lower is better")
    ttft.set_yscale("log")  # from tens of milliseconds to a minute where requests queue
    for axes in (throughput, ttft):
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    figure.set_size_inches(16, 5)
    for axes, other, path in [(throughput, ttft, throughput_png), (ttft, throughput, ttft_png)]:
        other.set_visible(False)
        figure.draw_without_rendering()
        box = axes.get_tightbbox()
        inches = box.transformed(figure.dpi_scale_trans.inverted()).padded(0.1) if box else None
        figure.savefig(path, dpi=110, bbox_inches=inches or "tight")
        other.set_visible(True)
