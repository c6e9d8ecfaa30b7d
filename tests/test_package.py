"""What importing the course package costs, and that its names are all there."""

import importlib
import pkgutil
import subprocess
import sys

import pytest

import llmlab


def test_every_public_name_resolves():
    for name in llmlab.__all__:
        assert getattr(llmlab, name) is not None
    assert llmlab.LocalLLM.__module__ == "llmlab.local.generation"


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'LocalLM'"):
        llmlab.LocalLM  # noqa: B018


HTTP_ONLY = ["llmlab.webui.app", "llmlab.scaleout", "llmlab.bench", "llmlab.bench.timeline",
             "llmlab.servers.service", "llmlab.servers.transformers_serve",
             "llmlab.exercises"]  # fmt: skip
#: Exercise checkers that need no model: chapters 03-08's.
MODEL_FREE_CHECKERS = [f"llmlab.exercises.chapter0{n}" for n in (3, 4, 5, 6, 7, 8)]
#: Memory arithmetic, planning and their figures: a plan is made before anything is loaded.
SIZING = ["llmlab.sizing.capacity", "llmlab.sizing.load_plan", "llmlab.sizing.model_size",
          "llmlab.sizing.paged_kv", "llmlab.sizing.parallel_split"]  # fmt: skip


@pytest.mark.parametrize("module", HTTP_ONLY + MODEL_FREE_CHECKERS + SIZING)
def test_http_only_modules_do_not_load_pytorch(module):
    """The chat page, the router experiments and the harness start in a fraction of the time
    and memory when PyTorch stays out (it is only needed to run a model in process)."""
    code = f"import sys, {module}; print('torch' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert loaded.stdout.strip() == "False", loaded.stderr


def test_every_error_the_package_raises_is_a_course_error():
    """``except LLMLabError`` catches whatever the course itself raises, in any module."""
    strays = []
    for module_info in pkgutil.walk_packages(llmlab.__path__, "llmlab."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
                and not issubclass(value, llmlab.LLMLabError)
            ):
                strays.append(f"{module.__name__}.{name}")
    assert strays == []
