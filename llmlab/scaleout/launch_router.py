"""Run vLLM's router with its API key taken from the environment, not the command line.

``vllm-router`` reads ``--api-key`` only from its arguments, and a process's arguments are
shown by ``ps`` to every user of the machine. ``python -m llmlab.scaleout.launch_router ARGS``
runs the same launcher in this process, adding ``--api-key`` from ``VLLM_ROUTER_API_KEY``
after the process has started: ``ps`` shows the command as it was started, without the key.
"""

from __future__ import annotations

import os
import sys

API_KEY_ENV = "VLLM_ROUTER_API_KEY"


def main() -> None:
    # Imported here, so that naming API_KEY_ENV does not need vllm-router installed.
    from vllm_router.launch_router import main as launch

    key = os.environ.pop(API_KEY_ENV, None)
    if key:
        sys.argv += ["--api-key", key]
    launch()


if __name__ == "__main__":
    main()
