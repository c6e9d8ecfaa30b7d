"""HTTP as every part of the course speaks it: what clients share (``common``), the one reader
of streamed answers (``streaming``), concurrent retrying requests (``async_batch``), what the
course's servers do with hostile input (``guard``) and a fuzzer that checks it (``fuzzing``).
For single requests and streaming the chapters use the official ``openai`` client directly."""

from llmlab.http.async_batch import AsyncBatchClient, RequestResult

__all__ = ["AsyncBatchClient", "RequestResult"]
