"""The service's paged KV cache in numbers, shared by its continuous engine (``continuous.py``)
and by ``transformers serve`` as the course starts it (``llmlab.servers.transformers_serve``):
the same scheduler with the same cache, so chapter 06 compares the HTTP layers around it."""

#: Tokens a cache block holds; a request takes blocks as its prompt and answer grow.
PAGE_TOKENS = 64
#: The most prompt tokens one step processes: a long prompt is prefilled over several steps,
#: so the requests already writing are not stalled for the whole of it.
STEP_TOKENS = 512
#: A manager's cache, allocated with its first request: 16 answers of 512 tokens. Left to
#: itself, Transformers sizes it from free memory: on a CPU, most of the machine's RAM.
CACHE_TOKENS = 8192
