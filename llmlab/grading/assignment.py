"""One graded notebook made from the exercises that end the chapters, in nbgrader's format.

Each chapter ends with an exercise: a markdown cell that sets the task, then one code cell with a
first try at the answer and the check, ``check_...(answer)`` inside ``try: ... except
ExerciseError``. The assignment keeps that text and that first try, and splits the code cell in
two for nbgrader: the answer (the student edits it) and the check, which nbgrader locks, runs
without the ``try`` (a failed check raises, so the exercise scores 0) and scores. The chapters
stay the one place the exercises are written.
"""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Iterable
from pathlib import Path

import nbformat

#: The chapters, beside the ``llmlab`` package in the course's folder.
CHAPTERS_DIR = Path(__file__).resolve().parents[2] / "chapters"
#: Points for each exercise whose check passes.
POINTS = 1

INTRODUCTION = """\
# The course's exercises, graded

One exercise from the end of each chapter. For each: read the task, edit the code cell below it
until the check under it passes (run both; the check prints ✓), and save the notebook. Leave
the check cells as they are: they are locked, and your teacher runs them again when grading.
The chapters give the context of each task; the first try in each cell is a common mistake.
"""


def chapter_notebooks(chapters: Iterable[str] = ()) -> list[Path]:
    """The chapter notebooks whose numbers are in ``chapters`` ("03"), or all of them."""
    found = sorted(CHAPTERS_DIR.glob("[0-9][0-9]_*.ipynb"))
    wanted = {f"{int(number):02d}" for number in chapters}
    unknown = wanted - {path.name[:2] for path in found}
    if unknown:
        numbers = ", ".join(path.name[:2] for path in found)
        raise ValueError(f"no chapter {', '.join(sorted(unknown))}: the chapters are {numbers}")
    return [path for path in found if not wanted or path.name[:2] in wanted]


def exercise_cells(chapter: Path) -> tuple[str, str]:
    """The last "## Exercise" markdown cell of ``chapter`` and the code cell after it."""
    cells = nbformat.read(chapter, as_version=4).cells
    starts = [i for i, cell in enumerate(cells) if cell.source.startswith("## Exercise")]
    if not starts or starts[-1] + 1 >= len(cells) or cells[starts[-1] + 1].cell_type != "code":
        raise ValueError(f"{chapter.name} has no '## Exercise' cell followed by a code cell")
    return cells[starts[-1]].source, cells[starts[-1] + 1].source


def split_answer_and_check(code: str) -> tuple[str, str]:
    """The answer (the code before the check, imports of what only the check uses removed) and
    the check (its imports, then the statements from the first ``try`` or ``with`` on, each
    ``try: ... except ExerciseError`` replaced by its body)."""
    tree = ast.parse(code)
    first = next(
        (i for i, node in enumerate(tree.body) if isinstance(node, ast.Try | ast.With)), None
    )
    if first is None:
        raise ValueError("the exercise's code has no check (a 'try' or 'with' statement)")
    answer_nodes, check_nodes = tree.body[:first], tree.body[first:]
    check = [statement for node in check_nodes for statement in _without_try(node)]
    used_by_check = _names(check)
    used_by_answer = _names(n for n in answer_nodes if not isinstance(n, ast.ImportFrom))

    defined = {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    defined |= {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    defined |= {a.asname or a.name for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)
                for a in n.names}  # fmt: skip
    undefined = sorted(used_by_check - defined - set(dir(builtins)))
    if undefined:  # the assignment runs the cell alone, without the chapter above it
        raise ValueError(f"the exercise's check uses {', '.join(undefined)} from the chapter "
                         "above it: the exercise's cell must import or define it")  # fmt: skip

    lines = code.splitlines()
    check_imports: list[str] = []
    answer_lines = lines[: check_nodes[0].lineno - 1]
    for node in reversed(answer_nodes):  # from the bottom, so earlier line numbers stay valid
        if not isinstance(node, ast.ImportFrom):
            continue
        for_check = [alias for alias in node.names if (alias.asname or alias.name) in used_by_check]
        for_answer = [alias for alias in node.names
                      if (alias.asname or alias.name) in used_by_answer]  # fmt: skip
        if for_check:
            check_imports.insert(0, _import_line(node.module, for_check))
        kept = [_import_line(node.module, for_answer)] if for_answer else []
        answer_lines[node.lineno - 1 : node.end_lineno] = kept
    answer = re.sub(r"\n{3,}", "\n\n\n", "\n".join(answer_lines)).strip() + "\n"
    statements = "\n".join(ast.unparse(node) for node in check)
    return answer, "\n".join(check_imports) + "\n\n" + statements + "\n"


def build_assignment(chapters: Iterable[str] = ()) -> nbformat.NotebookNode:
    """The source notebook of the assignment: an introduction, then per chapter its task, its
    answer cell (nbgrader: "autograded answer") and its check ("autograder tests", locked)."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                       "language": "python"}  # fmt: skip
    notebook.cells.append(nbformat.v4.new_markdown_cell(INTRODUCTION))
    for chapter in chapter_notebooks(chapters):
        number = chapter.name[:2]
        task, code = exercise_cells(chapter)
        answer, check = split_answer_and_check(code)
        heading, _, body = task.partition("\n")
        notebook.cells.append(
            nbformat.v4.new_markdown_cell(f"{heading.replace('## ', f'## {number} · ')}\n{body}")
        )
        notebook.cells.append(_graded(nbformat.v4.new_code_cell(answer), f"{number}-answer"))
        notebook.cells.append(_graded(nbformat.v4.new_code_cell(check), f"{number}-check"))
    return notebook


def _graded(cell: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    """``cell`` with nbgrader's metadata: an answer cell, or a locked check worth ``POINTS``."""
    is_check = grade_id.endswith("-check")
    cell.metadata["nbgrader"] = {"grade_id": grade_id, "grade": is_check,
                                 "solution": not is_check, "locked": is_check,
                                 "schema_version": 3, "task": False}  # fmt: skip
    if is_check:
        cell.metadata["nbgrader"]["points"] = POINTS
    return cell


def _without_try(node: ast.stmt) -> list[ast.stmt]:
    """``node`` with each ``try: ... except ExerciseError: ...`` in it replaced by the
    statements of its body and of its ``finally``: a failed check then raises, so nbgrader
    scores it 0. A ``try`` that catches anything else is the student's, kept as it is."""

    class Unwrap(ast.NodeTransformer):
        def visit_Try(self, try_node: ast.Try) -> ast.stmt | list[ast.stmt]:
            self.generic_visit(try_node)  # the ones inside it first
            caught = {ast.unparse(handler.type) for handler in try_node.handlers if handler.type}
            if caught != {"ExerciseError"} or try_node.orelse:
                return try_node
            return [*try_node.body, *try_node.finalbody]

    unwrapped = Unwrap().visit(node)
    return unwrapped if isinstance(unwrapped, list) else [unwrapped]


def _import_line(module: str | None, aliases: list[ast.alias]) -> str:
    names = ", ".join(f"{a.name} as {a.asname}" if a.asname else a.name for a in aliases)
    return f"from {module} import {names}"


def _names(nodes: Iterable[ast.AST]) -> set[str]:
    """Every name the code in ``nodes`` reads or writes."""
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name)}
