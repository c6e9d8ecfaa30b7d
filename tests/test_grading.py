"""Grading a class with nbgrader: the assignment made from the chapters' exercises, and two
submissions, one right everywhere and one right in two exercises, scored by the real command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from llmlab.grading.assignment import build_assignment, exercise_cells, split_answer_and_check
from llmlab.grading.classroom import Classroom, GradingError

ROOT = Path(__file__).resolve().parents[1]
#: What each exercise asks the student to write, as ``solutions/chapter_exercises.py`` names it.
ANSWERS = {"01": "build_prompt", "02": "pad_batch", "03": "metrics", "04": "describe_gguf",
           "05": "chat_body", "06": "ChatRequest", "07": "reply",
           "08": "replicas_needed"}  # fmt: skip


def grading(*args: str | Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "llmlab.grading", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT)


def answered(released: Path, chapters: list[str]) -> nbformat.NotebookNode:
    """The released notebook with the answer cells of ``chapters`` replaced by the course's
    answers (imported, as a student could write them), the others left at the first try."""
    notebook = nbformat.read(released, as_version=4)
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if grade_id.endswith("-answer") and grade_id[:2] in chapters:
            name = ANSWERS[grade_id[:2]]
            cell.source = (f"import sys\n\nsys.path.insert(0, {str(ROOT)!r})\n"
                           f"from solutions.chapter_exercises import {name}\n")  # fmt: skip
    return notebook


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    course, handed_in = tmp_path_factory.mktemp("course"), tmp_path_factory.mktemp("handed-in")
    assigned = grading("--course", course, "assign")
    assert assigned.returncode == 0, assigned.stderr[-3000:]
    released = course / "release" / "exercises" / "exercises.ipynb"
    assert f"hand out {released}" in assigned.stdout
    nbformat.write(answered(released, list(ANSWERS)), handed_in / "ada.ipynb")
    nbformat.write(answered(released, ["03", "08"]), handed_in / "bob.ipynb")
    (handed_in / "eve.ipynb").write_text('{"cells": [')  # cut short in the copy
    return course, grading("--course", course, "grade", handed_in)


@pytest.mark.server
@pytest.mark.notebook
@pytest.mark.timeout(1200)
def test_the_command_scores_each_exercise_of_each_student(graded):
    course, done = graded
    assert done.returncode == 0, done.stderr[-3000:]
    scores = pd.read_csv(course / "scores.csv", index_col="student")
    scores["not graded"] = scores["not graded"].fillna("")
    checks = [f"{number}-check" for number in ANSWERS]
    assert list(scores.columns) == [*checks, "total", "not graded"]
    assert scores.loc["ada", checks].tolist() == [1.0] * 8 and scores.loc["ada", "total"] == 8
    bob = {check: scores.loc["bob", check] for check in checks}
    assert bob == {check: float(check[:2] in ("03", "08")) for check in checks}
    assert scores.loc["bob", "total"] == 2
    assert scores.loc[["ada", "bob"], "not graded"].tolist() == ["", ""]
    # a file nbgrader cannot read: no score made up, and the reason
    assert scores.loc["eve", [*checks, "total"]].isna().all()
    assert "NotJSONError: Notebook does not appear to be JSON" in scores.loc["eve", "not graded"]
    assert "wrote " + str(course / "scores.csv") in done.stdout
    for student in ("ada", "bob"):  # a page each, to send back, with the checks' messages
        page = course / "feedback" / student / "exercises" / "exercises.html"
        assert "Score" in page.read_text()
    bob_page = (course / "feedback" / "bob" / "exercises" / "exercises.html").read_text()
    assert "it pads on the right" in bob_page  # chapter 02's checker, in the student's terms


@pytest.mark.server
@pytest.mark.notebook
@pytest.mark.timeout(1200)
def test_students_get_each_chapters_first_try_and_locked_checks(graded):
    course, _ = graded
    released = nbformat.read(course / "release" / "exercises" / "exercises.ipynb", as_version=4)
    cells = {cell.metadata["nbgrader"]["grade_id"]: cell for cell in released.cells
             if "nbgrader" in cell.metadata}  # fmt: skip
    chapter = ROOT / "chapters" / "03_vllm.ipynb"
    assert "# A first try: fix it." in cells["03-answer"].source
    assert cells["03-answer"].source == split_answer_and_check(exercise_cells(chapter)[1])[0]
    assert (
        cells["03-check"].metadata["nbgrader"] | {"points": 1, "locked": True}
        == cells["03-check"].metadata["nbgrader"]
    )
    assert "try:" not in cells["03-check"].source


def test_the_check_loses_its_try_and_takes_the_imports_only_it_uses():
    code = (
        "from llmlab.exercises import ExerciseError, check_serving_metrics\n"
        "from llmlab.prompts import SYSTEM_PROMPT\n\n\n"
        "def metrics(a, b, c):\n    # A first try.\n    return {'prompt': SYSTEM_PROMPT}\n\n\n"
        "try:\n    check_serving_metrics(metrics)\nexcept ExerciseError as error:\n"
        "    print(error)\n"
    )
    answer, check = split_answer_and_check(code)
    assert answer == (
        "from llmlab.prompts import SYSTEM_PROMPT\n\n\n"
        "def metrics(a, b, c):\n    # A first try.\n    return {'prompt': SYSTEM_PROMPT}\n"
    )
    assert check == (
        "from llmlab.exercises import check_serving_metrics\n\ncheck_serving_metrics(metrics)\n"
    )


def test_aliases_nested_checks_and_finally_survive_the_split():
    code = (
        "from llmlab.exercises import ExerciseError, check_chat_reply as check\n"
        "from llmlab.servers.llamacpp import llama_server\n\n\n"
        "def reply(client):\n    try:\n        return 1\n    except KeyError:\n"
        "        return 2\n\n\n"
        "server = llama_server().start()\n"
        "try:\n    try:\n        check(reply, server)\n    except ExerciseError as error:\n"
        "        print(error)\nfinally:\n    server.stop()\n"
    )
    answer, check = split_answer_and_check(code)
    assert "except KeyError" in answer  # the student's own try stays
    assert "from llmlab.servers.llamacpp import llama_server" in answer  # used above the check
    assert check.startswith("from llmlab.exercises import check_chat_reply as check\n")
    # the outer try has no ExerciseError handler: kept, with its finally; the inner one is gone
    assert "check(reply, server)" in check and "except ExerciseError" not in check
    assert "finally:\n    server.stop()" in check


def test_a_check_that_needs_the_chapter_above_it_is_refused():
    code = ("def f():\n    pass\n\n\ntry:\n    check(f, llm.tokenizer)\n"
            "except ExerciseError:\n    pass\n")  # fmt: skip
    with pytest.raises(ValueError, match="uses check, llm from the chapter above it"):
        split_answer_and_check(code)


def test_every_chapter_has_an_exercise_the_assignment_can_run_alone():
    notebook = build_assignment()
    ids = [cell.metadata["nbgrader"]["grade_id"] for cell in notebook.cells
           if "nbgrader" in cell.metadata]  # fmt: skip
    assert ids == [f"{number}-{part}" for number in ANSWERS for part in ("answer", "check")]
    with pytest.raises(ValueError, match="no chapter 09: the chapters are 01, 02"):
        build_assignment(["9"])
    assert len(build_assignment(["3", "08"]).cells) == 1 + 2 * 3


def test_grading_before_assigning_or_with_badly_named_files_says_what_to_do(tmp_path: Path):
    classroom = Classroom.at(tmp_path / "course")
    with pytest.raises(GradingError, match="no assignment 'exercises' .* run assign"):
        classroom.collect(tmp_path)
    classroom.released_notebook.parent.mkdir(parents=True)
    classroom.released_notebook.write_text(json.dumps(nbformat.v4.new_notebook()))
    with pytest.raises(GradingError, match=r"no notebooks \(STUDENT.ipynb\) in"):
        classroom.collect(tmp_path)
    (tmp_path / "Ada Lovelace (final).ipynb").write_text("{}")
    with pytest.raises(GradingError, match="name each file after its student"):
        classroom.collect(tmp_path)


def test_assigning_a_chapter_that_does_not_exist_is_one_line_not_a_traceback(tmp_path, capsys):
    from llmlab.grading.__main__ import main

    assert main(["--course", str(tmp_path), "assign", "--chapters", "9"]) == 1
    assert capsys.readouterr().err == "error: no chapter 09: the chapters are 01, 02, 03, 04, " \
        "05, 06, 07, 08\n"  # fmt: skip
    assert not (tmp_path / "source").exists()
