"""llmlab: the helper package of the course on running LLMs on your own hardware.

The notebooks show each idea in a few lines and call llmlab for the plumbing.
"""

from importlib.metadata import version

from llmlab.errors import LLMLabError, MissingPackageError, ModelNotFoundError, ModelTooLargeError
from llmlab.generation import GenerationResult, LocalLLM, SamplingParams, StreamChunk, Usage
from llmlab.hardware import (
    Architecture,
    Hardware,
    MemoryEstimate,
    Recommendation,
    detect_hardware,
    estimate_memory,
    recommend,
)
from llmlab.models import resolve_model
from llmlab.settings import DEFAULT_MODEL, cache_dir

__version__ = version("llmlab")

__all__ = [
    "DEFAULT_MODEL",
    "Architecture",
    "GenerationResult",
    "Hardware",
    "LLMLabError",
    "LocalLLM",
    "MemoryEstimate",
    "MissingPackageError",
    "ModelNotFoundError",
    "ModelTooLargeError",
    "Recommendation",
    "SamplingParams",
    "StreamChunk",
    "Usage",
    "cache_dir",
    "detect_hardware",
    "estimate_memory",
    "recommend",
    "resolve_model",
]
