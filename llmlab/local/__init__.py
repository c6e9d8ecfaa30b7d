"""A model in this Python process (chapters 01 and 02): ``generation`` (``LocalLLM``), batched
generation with left padding (``batching``) and the memory a block of code takes
(``profiling``)."""
