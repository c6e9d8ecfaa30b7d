"""The service's paged KV cache in numbers, shared by its continuous engine (``continuous.py``)
and by ``transformers serve`` as the course starts it (``llmlab.servers.transformers_serve``):
the same scheduler with the same cache, so chapter 06 compares the HTTP layers around it."""

from llmlab.settings import low_memory

#: Tokens a cache block holds; a request takes blocks as its prompt and answer grow.
PAGE_TOKENS = 64
#: The most prompt tokens one step processes: a long prompt is prefilled over several steps,
#: so the requests already writing are not stalled for the whole of it.
STEP_TOKENS = 512
#: A manager's cache, allocated with its first request: 16 answers of 512 tokens (0.4 GB for
#: SmolLM2-135M in float32). Left to itself, Transformers sizes it from free memory: on a CPU,
#: most of the machine's RAM.
CACHE_TOKENS = 8192
#: Where memory is short (``low_memory``, as on Binder's 2 GB): room for the longest request the
#: service accepts (a 1536-token prompt and a 1024-token answer, 0.1 GB); more wait for blocks.
LOW_MEMORY_CACHE_TOKENS = 2560


def default_cache_tokens() -> int:
    """The cache size for this machine: ``CACHE_TOKENS``, or less where memory is short."""
    return LOW_MEMORY_CACHE_TOKENS if low_memory() else CACHE_TOKENS
