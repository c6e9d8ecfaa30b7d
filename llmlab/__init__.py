"""llmlab: the helper package of the course on running LLMs on your own hardware.

The notebooks show each idea in a few lines and call llmlab for the plumbing.

The names below are imported on first use, not with the package: ``from llmlab import
LocalLLM`` loads PyTorch and Transformers (seconds, and hundreds of MB), while a chat page, a
router experiment or an HTTP client that imports ``llmlab.webui`` or ``llmlab.scaleout`` does
not pay for them.
"""

from importlib.metadata import version

from llmlab.lazy import lazy_exports

__version__ = version("llmlab")

#: Each public name, and the module it lives in.
_EXPORTS = {
    "LLMLabError": "llmlab.errors",
    "MissingPackageError": "llmlab.errors",
    "ModelNotFoundError": "llmlab.errors",
    "ModelTooLargeError": "llmlab.errors",
    "GenerationResult": "llmlab.local.sampling",
    "LocalLLM": "llmlab.local.generation",
    "SamplingParams": "llmlab.local.sampling",
    "StreamChunk": "llmlab.local.sampling",
    "Usage": "llmlab.local.sampling",
    "Architecture": "llmlab.sizing.memory",
    "Hardware": "llmlab.sizing.hardware",
    "MemoryEstimate": "llmlab.sizing.memory",
    "Recommendation": "llmlab.sizing.hardware",
    "detect_hardware": "llmlab.sizing.hardware",
    "estimate_memory": "llmlab.sizing.memory",
    "recommend": "llmlab.sizing.hardware",
    "resolve_model": "llmlab.models",
    "DEFAULT_MODEL": "llmlab.settings",
    "cache_dir": "llmlab.settings",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
