"""Every server process the course starts, and how it is started, watched and stopped.

``Server`` (``process``) runs one server on 127.0.0.1 and a free port, waits for its health
check, logs to a file and stops its whole process tree (``tree``); ``reaper`` stops them all
when their owner dies, however it dies. The engines' commands are one module each: ``vllm``,
``llamacpp`` (llama-server), ``ollama`` (a real Ollama, or the course's compatible server).
A router and the chat pages are started the same way, beside their code (``llmlab.scaleout``,
``llmlab.webui``).
"""

from llmlab.servers.process import LOCALHOST, Server, free_port, port_in_use

__all__ = ["LOCALHOST", "Server", "free_port", "port_in_use"]
