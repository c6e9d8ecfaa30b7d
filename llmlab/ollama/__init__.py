"""Ollama for chapter 05: Modelfiles, the HTTP API, and a server that speaks it on llama.cpp.

Where Ollama runs, the chapter uses it (``find_ollama``). Where it cannot be installed, the
course's own server (``ollama_server``) serves the same API on ``llama-server``, so the official
``ollama`` client and :class:`OllamaClient` work against either, unchanged.
"""

from llmlab.ollama.client import OllamaClient, OllamaConnectionError, OllamaError
from llmlab.ollama.modelfile import Modelfile, ModelfileError, parse_modelfile
from llmlab.ollama.server import create_app
from llmlab.ollama.store import ModelNotInStoreError, ModelStore, StoredModel
from llmlab.servers.ollama import find_ollama, ollama_host, ollama_server

__all__ = [
    "Modelfile",
    "ModelfileError",
    "ModelNotInStoreError",
    "ModelStore",
    "OllamaClient",
    "OllamaConnectionError",
    "OllamaError",
    "StoredModel",
    "create_app",
    "find_ollama",
    "ollama_host",
    "ollama_server",
    "parse_modelfile",
]
