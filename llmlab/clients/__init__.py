"""Clients for the servers the course runs. For single requests and streaming, the chapters use
the official ``openai`` client directly; these cover what it does not."""

from llmlab.clients.async_batch import AsyncBatchClient, RequestResult

__all__ = ["AsyncBatchClient", "RequestResult"]
