"""llama.cpp for chapter 04: its tools built once (``build``), the CPU kernels that really run
here (``cpu``), GGUF files read, converted and quantized (``gguf``), a client for
llama-server's native API (``client``) and its own chat page (``webui``). llama-server itself
is started by ``llmlab.servers.llamacpp``."""
