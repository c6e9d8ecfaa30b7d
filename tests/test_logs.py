"""output_to_log: what an engine run in process prints goes to a log file, not the notebook."""

import os
import subprocess
import sys

from llmlab.logs import output_to_log


def test_every_kind_of_output_goes_to_the_log_and_nothing_leaks(monkeypatch, tmp_path, capfd):
    monkeypatch.setenv("LLMLAB_CACHE", str(tmp_path))
    with output_to_log("engine") as path:
        print("from print")
        print("from sys.stderr (warnings, progress bars)", file=sys.stderr)
        os.write(2, b"from C code\n")
        subprocess.run([sys.executable, "-c", "print('from a child process')"], check=True)
    print("after the block")
    logged = path.read_text()
    for line in ["from print", "from sys.stderr", "from C code", "from a child process"]:
        assert line in logged
    assert path == tmp_path / "logs" / "engine.log"
    shown = capfd.readouterr()
    assert "after the block" in shown.out
    assert "from" not in shown.out + shown.err.replace("after", "")
