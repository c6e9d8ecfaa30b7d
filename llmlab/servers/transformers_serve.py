"""Start Transformers' own OpenAI-compatible server, ``transformers serve``, on the course's model.

Chapter 06 sets the course's service beside it: both run the same model through Transformers in
one Python process, and ``--continuous-batching`` gives it the same scheduler the service's
continuous engine uses (``ContinuousBatchingManager``), behind Transformers' own HTTP layer.

It has no ``ignore_eos`` (and refuses the field): a request forces its length with a
``generation_config`` of its own, which the server reads from the body in place of the model's
(``FORCED_LENGTH``: the course's benchmark client, ``OpenAIChat``, takes it as options).
"""

from __future__ import annotations

import json
import sys

from llmlab.models import resolve_model
from llmlab.servers import LOCALHOST, Server
from llmlab.service.paging import PAGE_TOKENS, STEP_TOKENS, default_cache_tokens
from llmlab.sizing.hardware import detect_hardware

#: ``OpenAIChat`` options for answers exactly ``max_tokens`` long, greedy: no ``ignore_eos``
#: field, and a generation config in which the end of text ends nothing (``eos_token_id`` -1).
FORCED_LENGTH = {
    "ignore_eos": False,
    "extra_body": {"generation_config": json.dumps({"eos_token_id": -1, "do_sample": False})},
}


def transformers_server(
    model: str | None = None,
    *,
    continuous_batching: bool = True,
    host: str = LOCALHOST,
    port: int | None = None,
    startup_timeout_s: float = 300,
) -> Server:
    """A ``Server`` for ``transformers serve`` (call ``start()`` or use ``with``), the model
    loaded at start (clients name it by the folder ``resolve_model`` gives, ``Server.model``)."""
    folder = resolve_model(model)
    hardware = detect_hardware()
    # `python -m transformers.cli.transformers` is the `transformers` command of this venv
    command = [
        sys.executable, "-m", "transformers.cli.transformers", "serve", folder,
        "--host", "{host}",
        "--port", "{port}",
        "--device", hardware.device,
        "--dtype", hardware.compute_dtype,  # the dtype the course's service loads
        "--continuous-batching" if continuous_batching else "--no-continuous-batching",
    ]  # fmt: skip
    if continuous_batching:
        # Left to itself, the paged cache takes most of a CPU machine's RAM (21.6 GB of 24,
        # measured): the service's engine's sizes instead.
        command += ["--cb-block-size", str(PAGE_TOKENS),
                    "--cb-num-blocks", str(default_cache_tokens() // PAGE_TOKENS),
                    "--cb-max-batch-tokens", str(STEP_TOKENS)]  # fmt: skip
    return Server(
        command,
        name="transformers-serve",
        model=folder,
        host=host,
        port=port,
        startup_timeout_s=startup_timeout_s,
    )
