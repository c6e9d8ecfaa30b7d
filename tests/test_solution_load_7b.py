"""Exercise 1's script, run for real: it loads the default model and answers, and it refuses
with a clear message when it cannot size a model or the model does not fit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import huggingface_hub.constants

from llmlab.models import resolve_model
from llmlab.sizing import model_size
from llmlab.sizing.hardware import Hardware
from solutions import load_7b

ROOT = Path(__file__).resolve().parents[1]


def cpu(free_gib: float) -> Hardware:
    return Hardware("cpu", "CPU", free_gib, free_gib, 2)


def run_script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "solutions.load_7b", *args],
        cwd=ROOT,
        env=os.environ | (env or {}),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_script_loads_the_default_model_and_answers():
    result = run_script(resolve_model(), "--prompt", "What is the capital of France?")
    assert result.returncode == 0, result.stderr
    answer = next(line for line in result.stdout.splitlines() if line.startswith("answer: "))
    assert answer.removeprefix("answer: ").strip()  # its words depend on the CPU
    for part in ["plan: load", "load time:", "peak memory:", "tokens/s"]:
        assert part in result.stdout


def test_a_hub_id_without_network_fails_with_a_clear_message(tmp_path):
    offline = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}  # no network, empty cache
    result = run_script("Qwen/Qwen2.5-14B-Instruct", "--dry-run", env=offline)  # not shipped
    assert result.returncode == load_7b.EXIT_ERROR
    assert "Cannot size Qwen/Qwen2.5-14B-Instruct offline" in result.stderr
    assert "local Transformers folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_model_too_large_exits_with_the_explanation(monkeypatch, capsys):
    monkeypatch.setattr(load_7b, "machine", lambda device: (cpu(0.8), 0.0))
    assert load_7b.main([resolve_model(), "--dry-run"]) == load_7b.EXIT_TOO_LARGE
    out, err = capsys.readouterr()
    assert "plan: refuse" in out
    assert "needs 0.9 GiB in bfloat16" in err and "this machine has 0.8 GiB available" in err
    assert "This model as a GGUF Q4_K_M with llama.cpp (chapter 04, 0.7 GiB) would fit." in err


def test_the_7b_of_the_exercise_is_planned_offline(monkeypatch, capsys):
    def no_hub(repo_id):
        raise AssertionError(f"asked the hub about {repo_id}")

    monkeypatch.setattr(model_size, "count_parameters_on_hub", no_hub)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import
    monkeypatch.setattr(load_7b, "machine", lambda device: (cpu(24), 0.0))
    assert load_7b.main(["Qwen/Qwen2.5-7B-Instruct", "--dry-run"]) == 0
    out, _ = capsys.readouterr()
    assert "Qwen/Qwen2.5-7B-Instruct: 7.62 B parameters" in out
    assert "config.json shipped with the course" in out and "plan: load" in out
    assert "bfloat16 needs 16.3 of 24.0 GiB free" in out  # chapter 01's figure for this model

    monkeypatch.setattr(load_7b, "machine", lambda device: (cpu(8), 0.0))
    assert load_7b.main(["Qwen/Qwen2.5-7B-Instruct", "--dry-run"]) == load_7b.EXIT_TOO_LARGE
    out, err = capsys.readouterr()
    assert "plan: refuse" in out and "GGUF Q4_K_M" in err
