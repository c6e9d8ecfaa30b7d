"""Settings read from the environment: the low-memory switch and its detection, the test run's
shorter sweeps and fuzzing."""

from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from llmlab.bench.timeline import batching_servers
from llmlab.service.paging import CACHE_TOKENS, LOW_MEMORY_CACHE_TOKENS, default_cache_tokens
from llmlab.settings import LOW_MEMORY_BYTES, fuzz_examples, low_memory, sweep_levels


@pytest.fixture
def cgroup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cgroup folder to fill, on a machine of 16 GiB, with no setting."""
    monkeypatch.delenv("LLMLAB_LOW_MEMORY", raising=False)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(total=16 * 2**30))
    return tmp_path


def test_a_container_capped_like_binder_is_low_on_memory(cgroup: Path):
    (cgroup / "memory.max").write_text(f"{2 * 10**9}\n")  # Binder: 2 GB
    assert low_memory(cgroup, cgroup / "no-membership-file")


def test_a_cap_on_a_cgroup_above_this_process_counts(cgroup: Path):
    """JupyterHub's SystemdSpawner caps the user's slice; the kernel runs in a cgroup below."""
    (cgroup / "memory.max").write_text("max\n")
    kernel = cgroup / "user.slice" / "jupyter-ada.service" / "kernel"
    kernel.mkdir(parents=True)
    (kernel / "memory.max").write_text("max\n")
    (kernel.parent / "memory.max").write_text(f"{2 * 2**30}\n")
    (cgroup / "self").write_text("0::/user.slice/jupyter-ada.service/kernel\n")
    assert low_memory(cgroup, cgroup / "self")
    (kernel.parent / "memory.max").write_text("max\n")
    assert not low_memory(cgroup, cgroup / "self")


def test_an_uncapped_container_has_the_machines_memory(cgroup: Path):
    (cgroup / "memory.max").write_text("max\n")  # cgroup v2: no limit
    (cgroup / "memory").mkdir()
    (cgroup / "memory" / "memory.limit_in_bytes").write_text(f"{LOW_MEMORY_BYTES * 10}\n")
    assert not low_memory(cgroup)


def test_a_small_machine_is_low_on_memory_without_a_container(cgroup: Path, monkeypatch):
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(total=2 * 2**30))
    assert low_memory(cgroup)


def test_the_setting_wins_and_refuses_what_it_cannot_read(cgroup: Path, monkeypatch):
    (cgroup / "memory.max").write_text(f"{10**9}\n")
    monkeypatch.setenv("LLMLAB_LOW_MEMORY", "0")
    assert not low_memory(cgroup)
    monkeypatch.setenv("LLMLAB_LOW_MEMORY", "1")
    assert low_memory(cgroup / "none")  # no cgroup files at all
    monkeypatch.setenv("LLMLAB_LOW_MEMORY", "yes")
    with pytest.raises(ValueError, match="LLMLAB_LOW_MEMORY must be 1 or 0, not 'yes'"):
        low_memory(cgroup)


def test_where_memory_is_short_the_kv_cache_shrinks_and_vllm_sits_out(monkeypatch):
    monkeypatch.setenv("LLMLAB_LOW_MEMORY", "1")
    assert default_cache_tokens() == LOW_MEMORY_CACHE_TOKENS < CACHE_TOKENS
    assert "vLLM" not in batching_servers() and "service, continuous" in batching_servers()
    monkeypatch.setenv("LLMLAB_LOW_MEMORY", "0")
    assert default_cache_tokens() == CACHE_TOKENS and "vLLM" in batching_servers()


def test_the_smaller_kv_cache_still_holds_the_longest_request_the_service_accepts():
    from llmlab.service.app import ServiceSettings
    from llmlab.service.schemas import MAX_TOKENS_LIMIT

    assert ServiceSettings().max_prompt_tokens + MAX_TOKENS_LIMIT <= LOW_MEMORY_CACHE_TOKENS


@pytest.mark.parametrize(("value", "examples"), [(None, 10), ("5", 5), ("300", 300)])
def test_the_fuzzers_budget_comes_from_the_environment(monkeypatch, value, examples):
    if value is None:
        monkeypatch.delenv("LLMLAB_FUZZ_EXAMPLES", raising=False)
    else:
        monkeypatch.setenv("LLMLAB_FUZZ_EXAMPLES", value)
    assert fuzz_examples() == examples


@pytest.mark.parametrize("value", ["0", "five", "-3"])
def test_a_fuzz_budget_that_is_not_a_count_is_refused(monkeypatch, value):
    monkeypatch.setenv("LLMLAB_FUZZ_EXAMPLES", value)
    with pytest.raises(ValueError, match="LLMLAB_FUZZ_EXAMPLES must be a whole number"):
        fuzz_examples()


@pytest.mark.parametrize(
    ("waves", "levels"), [(None, [1, 4, 16]), ("2", [1, 4, 16]), ("1", [1, 16])]
)
def test_a_one_wave_sweep_visits_only_the_ends_of_the_range(monkeypatch, waves, levels):
    if waves is None:
        monkeypatch.delenv("LLMLAB_SWEEP_WAVES", raising=False)
    else:
        monkeypatch.setenv("LLMLAB_SWEEP_WAVES", waves)
    assert sweep_levels([16, 1, 4]) == levels
    assert sweep_levels([8]) == [8]  # one level is both ends


@pytest.mark.parametrize(("waves", "levels"), [("2", [1, 4, 16, 32]), ("1", [1, 16, 32])])
def test_a_level_a_later_cell_reads_is_kept_in_a_one_wave_sweep(monkeypatch, waves, levels):
    monkeypatch.setenv("LLMLAB_SWEEP_WAVES", waves)
    assert sweep_levels([1, 4, 16, 32], keep=[16]) == levels
    assert sweep_levels([1, 4], keep=[16]) == [1, 4]  # only levels of the sweep are kept
