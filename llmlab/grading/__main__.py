"""``python -m llmlab.grading``: assign the course's exercises to a class, then grade them.

    python -m llmlab.grading assign                 # writes the notebook to hand out
    python -m llmlab.grading grade handed-in/       # STUDENT.ipynb files -> scores.csv

Both take ``--course DIR`` (the nbgrader course folder; default: ``classroom/`` in the course's
cache folder) and ``--assignment NAME`` (default ``exercises``); ``assign`` takes ``--chapters
03 04`` to assign fewer exercises.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from llmlab.grading.classroom import Classroom, GradingError


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line: a subcommand (assign or grade) and where the course folder is."""
    parser = argparse.ArgumentParser(
        prog="python -m llmlab.grading",
        description="Assign the chapters' exercises with nbgrader; grade what a class hands in.",
    )
    parser.add_argument("--course", help="the nbgrader course folder (default: in the cache)")
    parser.add_argument("--assignment", default="exercises", help="its name (default: exercises)")
    commands = parser.add_subparsers(dest="command", required=True)
    assign = commands.add_parser("assign", help="write and release the assignment notebook")
    assign.add_argument("--chapters", nargs="+", default=[], help="only these (e.g. 03 04)")
    grade = commands.add_parser("grade", help="grade a folder of STUDENT.ipynb files")
    grade.add_argument("handed_in", type=Path, help="the folder of submitted notebooks")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the subcommand; a problem the teacher must fix is one line on stderr, exit 1."""
    args = parse_args(argv)
    classroom = Classroom.at(args.course, args.assignment)
    try:
        if args.command == "assign":
            notebook = classroom.assign(args.chapters)
            print(f"hand out {notebook}")
            print(f"collect the students' copies as STUDENT.ipynb files in one folder, then run: "
                  f"python -m llmlab.grading --course {classroom.root} grade FOLDER")  # fmt: skip
        else:
            table = classroom.grade(args.handed_in)
            print(table.to_string(na_rep="-"))
            print(f"wrote {classroom.root / 'scores.csv'}; feedback for each student in "
                  f"{classroom.root / 'feedback'}")  # fmt: skip
    except GradingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
