"""The classroom (conda) and Binder environments install what pyproject.toml says, nothing else.

environment.yml provides the interpreter and the build tools only; its setup step is bin/setup,
which installs pyproject.toml. A package pinned in environment.yml as well could drift from
pyproject.toml, so any pip section there must agree with it pin for pin.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def declared_requirements(pyproject: dict) -> dict[str, Requirement]:
    """Every requirement pyproject.toml declares, main and extras, by normalized name."""
    project = pyproject["project"]
    lines = [*project["dependencies"], *sum(project["optional-dependencies"].values(), [])]
    return {_name(req.name): req for req in map(Requirement, lines)}


def drift(environment: dict, pyproject: dict) -> list[str]:
    """What in a conda environment file disagrees with pyproject.toml (empty: nothing)."""
    problems = []
    dependencies = environment.get("dependencies", [])
    conda = [item for item in dependencies if isinstance(item, str)]
    python = next((item for item in conda if re.match(r"python\b", item)), None)
    if python is None:
        problems.append("environment.yml pins no python version")
    else:
        version = python.partition("=")[2].strip("=") or "0"
        if version not in SpecifierSet(pyproject["project"]["requires-python"]):
            problems.append(f"{python} does not satisfy requires-python")
    if "pip" not in conda:
        problems.append("environment.yml has no pip: bin/setup installs the packages with it")
    declared = declared_requirements(pyproject)
    for section in (item["pip"] for item in dependencies if isinstance(item, dict)):
        for line in section:
            if line.startswith("-"):  # an option such as -e .
                continue
            wanted = Requirement(line)
            ours = declared.get(_name(wanted.name))
            if ours is None:
                problems.append(f"{wanted.name} is installed by environment.yml only")
            elif str(wanted.specifier) != str(ours.specifier):
                problems.append(
                    f"{wanted.name}: {wanted.specifier} here, {ours.specifier} in pyproject"
                )
    return problems


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _load() -> tuple[dict, dict]:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    return environment, tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_agrees_with_pyproject():
    assert drift(*_load()) == []


def test_a_package_pinned_differently_is_caught():
    environment, pyproject = _load()
    environment["dependencies"].append({"pip": ["openai==0.28", "gradio-extra-thing"]})
    assert drift(environment, pyproject) == [
        "openai: ==0.28 here, >=1.40 in pyproject",
        "gradio-extra-thing is installed by environment.yml only",
    ]
    environment["dependencies"] = ["python=3.8"]
    assert drift(environment, pyproject) == [
        "python=3.8 does not satisfy requires-python",
        "environment.yml has no pip: bin/setup installs the packages with it",
    ]


def test_binder_builds_the_same_environment_through_bin_setup():
    binder_environment = ROOT / "binder" / "environment.yml"
    assert binder_environment.resolve() == (ROOT / "environment.yml").resolve()
    post_build = (ROOT / "binder" / "postBuild").read_text()
    assert re.search(r"^[^#]*\bbin/setup\b", post_build, re.MULTILINE)
    assert (ROOT / "binder" / "postBuild").stat().st_mode & 0o111, "postBuild must be executable"


def test_the_conda_instructions_run_bin_setup_into_the_conda_environment():
    instructions = (ROOT / "environment.yml").read_text()
    assert 'LLMLAB_VENV="$CONDA_PREFIX" bin/setup' in instructions
    assert "name: llmlab" in instructions
