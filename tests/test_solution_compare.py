"""Exercise 3: the comparison of deployment methods, run for real on every backend (small)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from llmlab.errors import PortInUseError
from llmlab.models import default_gguf
from llmlab.servers import Server
from llmlab.sizing.bandwidth import gguf_bytes_per_token
from solutions import compare_deployments

# The command runs once, in the first test that needs it, on two backends: the in-process one
# (its own rows) and one server. The notebook (solutions/compare_deployments.ipynb, run by nbval
# in the same suite) runs all five and fails if any request does, so no start is paid twice.
pytestmark = [pytest.mark.server, pytest.mark.vllm, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[1]
Backend, Running = compare_deployments.Backend, compare_deployments.Running
choose, compare = compare_deployments.choose, compare_deployments.compare

LEVELS = [1, 4]
TOKENS = 8
#: The backends the command runs here, as the table names them.
LABELS = {"transformers": "Transformers (in process)", "llama-server": "llama-server"}


def table_rows(markdown: str) -> list[list[str]]:
    """The cells of the results table's body (the first table in the file)."""
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    """The whole command, once, on the backends in ``LABELS`` (see above)."""
    out = tmp_path_factory.mktemp("compare")
    command = [sys.executable, "-m", "solutions.compare_deployments", "--out", str(out),
               "--levels", *map(str, LEVELS), "--max-tokens", str(TOKENS),
               "--llama-threads", "1", "--only", *LABELS]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done, out


def test_the_command_writes_every_file_and_prints_the_table(full_run):
    done, out = full_run
    for name in ["results.md", "results.csv", "results.json", "throughput.png", "ttft.png"]:
        assert (out / name).stat().st_size > 0, name
        assert f"wrote {out / name}" in done.stdout
    assert "| backend | concurrency |" in done.stdout
    assert (out / "throughput.png").read_bytes().startswith(b"\x89PNG")
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + len(LEVELS) + 1  # header; in-process at concurrency 1 only


def test_the_table_has_a_row_per_backend_and_level(full_run):
    _, out = full_run
    markdown = (out / "results.md").read_text()
    rows = table_rows(markdown)
    assert [(row[0], int(row[1])) for row in rows] == [
        (label, level) for label in LABELS.values() for level in LEVELS
    ]
    in_process_at_4 = rows[1]
    assert in_process_at_4[-1] == "not measured: serves one request at a time"
    assert set(in_process_at_4[2:-1]) == {""}  # no figure made up
    assert "## Skipped\n\n- none" in markdown
    assert "- TTFT: time to first token" in markdown and "- TPOT: " in markdown


def test_every_backend_ran_every_request_at_the_length_asked(full_run):
    _, out = full_run
    data = json.loads((out / "results.json").read_text())
    assert data["options"]["max_tokens"] == TOKENS
    runs = {backend["name"]: backend for backend in data["backends"]}
    assert list(runs) == list(LABELS) and not any(run["skipped"] for run in runs.values())
    for name, run in runs.items():
        assert run["label"] == LABELS[name] and run["ready_after_s"] > 0
        levels = [1] if name == "transformers" else LEVELS
        assert [result["concurrency"] for result in run["results"]] == levels
        for result in run["results"]:
            assert result["failed"] == 0, (name, result["errors"])
            assert result["completed"] == 8 and result["ttft_ms"]["p50"] > 0
            assert result["output_tokens"] == 8 * TOKENS, name


def test_one_request_is_set_against_the_memory_bandwidth_ceiling(full_run):
    _, out = full_run
    data = json.loads((out / "results.json").read_text())
    runs = {backend["name"]: backend for backend in data["backends"]}
    assert runs["llama-server"]["bytes_per_token"] == gguf_bytes_per_token(default_gguf())
    # 4-bit blocks against the in-process model's 16 or 32 bits a weight
    assert runs["transformers"]["bytes_per_token"] > 2.5 * runs["llama-server"]["bytes_per_token"]
    markdown = (out / "results.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| backend"))
    share = [cell.strip() for cell in header.strip("|").split("|")].index("of ceiling")
    for row in table_rows(markdown):
        at_one_request = row[1] == "1"
        assert bool(re.fullmatch(r"\d+%", row[share])) == at_one_request, row
    assert f"({data['bandwidth_bytes_per_s'] / 1e9:.1f} GB/s, measured)" in markdown


@contextmanager
def _busy_port() -> Iterator[Running]:
    """A server told to use a port that something already listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "http.server", "--bind", "{host}", "{port}"]
        with Server(command, name="busy", port=port, health_path="/"):
            raise AssertionError("unreachable: the port is taken")
    yield  # pragma: no cover


def test_a_backend_that_cannot_start_is_reported_and_the_others_still_run(tmp_path: Path):
    busy = Backend("busy-port", "a server on a port in use", lambda options: _busy_port())
    backends = [busy, *choose(only=["vllm", "llama-server"])]
    settings = {"model": str(tmp_path / "no-such-model"), "gguf": str(default_gguf())}
    comparison = asyncio.run(compare([1], 8, backends=backends, llama_threads=1, **settings))
    assert list(comparison.skipped) == ["busy-port", "vllm"]
    assert comparison.skipped["busy-port"].startswith(f"could not start: {PortInUseError.__name__}")
    assert "no-such-model" in comparison.skipped["vllm"]
    [result] = comparison.results
    assert (result.target, result.completed, result.failed) == ("llama-server", 8, 0)

    paths = compare_deployments.write_report(comparison, tmp_path / "out")
    markdown = paths["results.md"].read_text()
    assert [row[0] for row in table_rows(markdown)] == ["llama-server"]
    assert f"- `vllm`: {comparison.skipped['vllm']}" in markdown
    data = json.loads(paths["results.json"].read_text())
    assert "Port" in data["backends"][0]["detail"] and data["backends"][0]["results"] == []


def test_backends_are_chosen_by_name():
    assert [b.name for b in choose()] == list(compare_deployments.BACKENDS)
    assert [b.name for b in choose(skip=["vllm", "ollama"])] == [
        "transformers",
        "service",
        "llama-server",
    ]
    with pytest.raises(ValueError, match="no backend 'vlm'"):
        choose(only=["vlm"])
    assert compare_deployments.Options().levels == (1, 4, 16)
