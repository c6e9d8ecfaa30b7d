"""A class's exercises assigned, collected and graded with nbgrader, Jupyter's own autograder.

nbgrader keeps a course in one folder: ``source/`` (the teacher's notebook), ``release/`` (the
students' copy), ``submitted/STUDENT/``, ``autograded/STUDENT/`` (the submissions with the checks
run), ``feedback/STUDENT/`` (an HTML page per student) and ``gradebook.db`` (every score). This
module fills ``source/`` from the chapters (``llmlab.grading.assignment``), puts a folder of
handed-in notebooks where nbgrader expects them, and reads the scores back as a table.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
from tqdm.auto import tqdm

from llmlab.errors import LLMLabError
from llmlab.grading.assignment import build_assignment
from llmlab.settings import cache_dir

#: The notebook's name in every folder of the course (``exercises.ipynb``).
NOTEBOOK = "exercises"
#: Student ids are file names and folder names: letters, digits, ".", "_" and "-".
STUDENT_ID = re.compile(r"^[A-Za-z0-9][\w.-]*$")


class GradingError(LLMLabError, RuntimeError):
    """Something the teacher must fix before grading can go on, said in their terms."""


@dataclass
class Classroom:
    """An nbgrader course folder (default: ``classroom/`` in the course's cache folder)."""

    root: Path
    assignment: str = "exercises"

    @classmethod
    def at(
        cls, root: str | os.PathLike[str] | None = None, assignment: str = "exercises"
    ) -> Classroom:
        """The course folder ``root``, or ``classroom/`` in the course's cache folder."""
        return cls(Path(root).expanduser() if root else cache_dir() / "classroom", assignment)

    @property
    def released_notebook(self) -> Path:
        """The notebook to hand out, once ``assign`` has run."""
        return self.root / "release" / self.assignment / f"{NOTEBOOK}.ipynb"

    def assign(self, chapters: Iterable[str] = ()) -> Path:
        """Write the assignment from the chapters' exercises and release it: the notebook to
        hand out. Run again after editing a chapter (earlier grades stay in the gradebook)."""
        try:
            notebook = build_assignment(chapters)
        except ValueError as error:  # no such chapter, or an exercise cell it cannot split
            raise GradingError(str(error)) from error
        source = self.root / "source" / self.assignment / f"{NOTEBOOK}.ipynb"
        source.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, source)
        self._run(self._api().generate_assignment(self.assignment, force=True), "prepare")
        return self.released_notebook

    def collect(self, handed_in: Path) -> list[str]:
        """Copy each ``STUDENT.ipynb`` of ``handed_in`` to ``submitted/STUDENT/``; return the
        student ids, in order."""
        if not self.released_notebook.exists():
            raise GradingError(f"no assignment '{self.assignment}' in {self.root}: run assign")
        notebooks = sorted(Path(handed_in).glob("*.ipynb"))
        if not notebooks:
            raise GradingError(f"no notebooks (STUDENT.ipynb) in {handed_in}")
        for notebook in notebooks:
            if not STUDENT_ID.match(notebook.stem):
                raise GradingError(f"{notebook.name}: name each file after its student, with "
                                   "letters, digits, '.', '_' or '-' only")  # fmt: skip
            target = self.root / "submitted" / notebook.stem / self.assignment
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(notebook, target / f"{NOTEBOOK}.ipynb")
        return [notebook.stem for notebook in notebooks]

    def grade(self, handed_in: Path) -> pd.DataFrame:
        """Collect, autograde and write feedback for every notebook in ``handed_in``; return the
        score table (a row per student, a column per exercise, then the total), also written
        to ``scores.csv``. A notebook nbgrader cannot grade is listed with its reason."""
        from sqlalchemy.exc import SAWarning

        api, students = self._api(), self.collect(handed_in)
        problems = {}
        for student in tqdm(students, desc="grading", unit="student"):
            with warnings.catch_warnings():  # nbgrader 0.9's own SQLAlchemy use: not the teacher's
                warnings.simplefilter("ignore", SAWarning)
                result = api.autograde(self.assignment, student, force=True, create=True)
            if result["success"]:
                api.generate_feedback(self.assignment, student, force=True)
            else:
                problems[student] = _last_error(result)
        table = self.scores(students)
        table.loc[list(problems)] = None  # nbgrader records a failed run as scores of 0
        table["not graded"] = pd.Series(problems, dtype=object).reindex(table.index).fillna("")
        table.to_csv(self.root / "scores.csv")
        return table

    def scores(self, students: Iterable[str]) -> pd.DataFrame:
        """Each student's score per exercise (its grade id, e.g. ``03-check``) and in total."""
        from nbgrader.api import Gradebook, MissingEntry

        rows = {}
        with Gradebook(f"sqlite:///{self.root / 'gradebook.db'}") as gradebook:
            exercises = [cell.name for cell in gradebook.find_notebook(
                NOTEBOOK, self.assignment).grade_cells]  # fmt: skip
            for student in students:
                try:
                    notebook = gradebook.find_submission_notebook(
                        NOTEBOOK, self.assignment, student
                    )
                    grades = {grade.name: grade.score for grade in notebook.grades}
                except MissingEntry:  # handed in but never graded
                    grades = {}
                rows[student] = {name: grades.get(name) for name in sorted(exercises)}
        table = pd.DataFrame.from_dict(rows, orient="index")
        table.index.name = "student"
        table["total"] = table.sum(axis=1, min_count=1)
        return table

    def _api(self) -> Any:
        """nbgrader's Python API on this course folder, configured for the course."""
        try:
            from nbgrader.apps import NbGraderAPI
            from traitlets.config import Config
        except ImportError as error:
            raise GradingError("nbgrader is not installed: bin/setup installs it (or pip "
                               "install -e '.[teach]')") from error  # fmt: skip

        # nbgrader runs the `alembic` command (its database migrations) by name: the one
        # beside this Python, whether or not its folder is on PATH.
        bin_dir = str(Path(sys.executable).parent)
        if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
        config = Config()
        config.CourseDirectory.root = str(self.root)
        config.CourseDirectory.course_id = "llmlab"
        # Students get each exercise's first try, as in the chapters, not nbgrader's empty
        # "YOUR CODE HERE" stub: every preprocessor but the one that clears answers.
        config.GenerateAssignment.preprocessors = _without_clear_solutions()
        config.Execute.timeout = 300  # chapter 07's check starts a llama-server
        return NbGraderAPI(config=config)

    def _run(self, result: dict, what: str) -> None:
        """Raise ``GradingError`` with nbgrader's reason when its step failed."""
        if not result["success"]:
            raise GradingError(f"nbgrader could not {what} '{self.assignment}':\n"
                               f"{_last_error(result)}")  # fmt: skip


def _without_clear_solutions() -> list[type]:
    from nbgrader.converters import GenerateAssignment
    from nbgrader.preprocessors import ClearSolutions

    default = GenerateAssignment.class_traits()["preprocessors"].default()
    return [step for step in default if step is not ClearSolutions]


def _last_error(result: dict) -> str:
    """The cause in an nbgrader result's log and error: the last ``SomethingError: why`` line
    that is not nbgrader's own "see the traceback above"."""
    text = f"{result.get('log') or ''}\n{result.get('error') or ''}"
    cause = re.compile(r"\s*[\w.]+(Error|Exception): ")
    causes = [line.strip() for line in text.splitlines()
              if cause.match(line) and "see the" not in line]  # fmt: skip
    return causes[-1] if causes else "nbgrader gave no reason (see its log above)"
