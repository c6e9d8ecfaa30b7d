"""Execute notebooks in place, the way they are committed (run through ``bin/execute``).

A student reads the saved outputs on GitHub before running anything, so three things are fixed
after execution:

* progress bars: a tqdm bar in a notebook is a widget, and its saved text is the one it had
  when it was created ("0%"); here it becomes the bar's final text, read from the saved widget
  state (which JupyterLab also uses to draw the bar);
* paths: the user's home folder is shown as ``~`` and the course's folder as relative paths,
  so outputs do not carry the machine they ran on;
* errors: a notebook with an error output is not written, and the command fails.
"""

from __future__ import annotations

import argparse
import html
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = [
    *sorted((ROOT / "chapters").glob("*.ipynb")),
    ROOT / "solutions/compare_deployments.ipynb",
]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
TEXT_KINDS = ("text/plain", "text/html", "text/markdown")


def bar_text(states: dict[str, Any], model_id: str) -> str | None:
    """The text tqdm prints for the bar whose widget is ``model_id``, at its final state: the
    container holds the description, the progress and the counts."""
    container = states.get(model_id, {}).get("state", {})
    children = [child.removeprefix("IPY_MODEL_") for child in container.get("children", [])]
    parts = [states.get(child, {}).get("state", {}) for child in children]
    if len(parts) != 3 or "max" not in parts[1]:
        return None
    left, progress, right = parts
    done = progress.get("value", 0) / progress["max"] if progress["max"] else 1.0
    filled = round(10 * min(max(done, 0.0), 1.0))
    bar = "█" * filled + " " * (10 - filled)
    text = f"{html.unescape(left.get('value', ''))}|{bar}|{html.unescape(right.get('value', ''))}"
    return text.replace("\u2007", " ")  # tqdm pads with figure spaces in HTML


def without_machine_paths(text: str) -> str:
    return text.replace(f"{ROOT}/", "").replace(f"{Path.home()}/", "~/")


def tidy(notebook: nbformat.NotebookNode) -> list[str]:
    """Fix the saved outputs as described above; return the errors the notebook shows."""
    states = notebook.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    errors = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                errors.append(f"cell {index}: {output.ename}: {output.evalue}")
            if "text" in output:
                output.text = without_machine_paths(output.text)
            data = output.get("data", {})
            for kind in TEXT_KINDS:
                if isinstance(data.get(kind), str):
                    data[kind] = without_machine_paths(data[kind])
            if WIDGET_VIEW in data:
                final = bar_text(states, data[WIDGET_VIEW]["model_id"])
                if final is not None:
                    data["text/plain"] = final
    return errors


def execute(path: Path, timeout_s: int) -> bool:
    """Run ``path`` from its own folder and write it back if it ran without an error."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=timeout_s,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        store_widget_state=True,
    )
    started = time.monotonic()
    try:
        client.execute()
    except Exception as error:  # noqa: BLE001 - report which notebook, go on with the others
        print(f"FAILED {path.relative_to(ROOT)}: {type(error).__name__}: {error}", flush=True)
        return False
    errors = tidy(notebook)
    if errors:
        print(f"FAILED {path.relative_to(ROOT)}: {'; '.join(errors)}", flush=True)
        return False
    nbformat.write(notebook, path)
    print(f"ok     {path.relative_to(ROOT)} in {time.monotonic() - started:.0f} s", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/execute", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapter, and "
                        "the comparison notebook")  # fmt: skip
    parser.add_argument("--timeout", type=int, default=900, help="seconds a cell may take (900)")
    args = parser.parse_args(argv)
    paths = [path.resolve() for path in args.notebooks] or NOTEBOOKS
    results = [execute(path, args.timeout) for path in paths]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
