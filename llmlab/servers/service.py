"""Start the course's FastAPI service, or the source chapter's server, as a real uvicorn process.

Both are ``python -m`` modules started through :class:`llmlab.servers.Server`, so they bind
127.0.0.1 on a free port, log to a file and stop with their owner. A key travels in the
environment (``LLMLAB_API_KEY``, ``LLMLAB_BACKEND_API_KEY``), never on the command line, where
any user of the machine reads it with ``ps``.
"""

from __future__ import annotations

import sys

from llmlab.servers import Server
from llmlab.settings import served_model_name

SERVICE = "llmlab.service"
#: The source chapter's server, kept as written (no key, no limits).
NAIVE = "llmlab.service.naive"


def service_server(
    *args: str,
    module: str = SERVICE,
    api_key: str | None = None,
    backend_api_key: str | None = None,
    model: str | None = None,
    startup_timeout_s: float = 300,
) -> Server:
    """A ``Server`` (not started yet) for ``python -m module *args``.

    ``args`` are the service's own options (``--max-queue 2``, ``--backend URL`` ...).
    ``api_key`` is the key clients must send; ``backend_api_key`` the one a gateway sends on.
    ``model``: a Hub id or folder (default: ``$LLMLAB_MODEL`` or the offline model).
    """
    if module == NAIVE and (api_key or backend_api_key):
        raise ValueError("the source chapter's server has no API key: it cannot check one")
    command = [sys.executable, "-m", module, "--host", "{host}", "--port", "{port}", *args]
    if model:
        command += ["--model", model]
    env = {"LLMLAB_API_KEY": api_key, "LLMLAB_BACKEND_API_KEY": backend_api_key}
    return Server(
        command,
        name=module.replace(".", "-"),
        model=served_model_name(model),
        api_key=api_key,
        env={name: value for name, value in env.items() if value},
        startup_timeout_s=startup_timeout_s,
    )
