"""Grading a class: the chapters' exercises as one nbgrader assignment (``assignment``), and
the course folder nbgrader assigns, collects and autogrades in (``classroom``).

    python -m llmlab.grading assign | grade FOLDER
"""
