"""The course's benchmark harness: compare deployment methods on equal work, honestly.

A target (a server's API, or a model in this process) answers a fixed workload of chats at a
fixed concurrency or request rate; every request is recorded as it streams, and the run's
metrics use vLLM's serving-benchmark definitions (TTFT, TPOT, ITL, E2E; see ``DEFINITIONS``).

>>> target = OpenAIChat("http://127.0.0.1:8000/v1", "my-model", max_tokens=64)
>>> results = await sweep(target, [1, 4, 16])
>>> print(to_markdown(results))

From a shell: ``python -m llmlab.bench --url http://127.0.0.1:8000/v1 --model NAME``.
"""

from llmlab.bench.http_targets import (
    CourseChat,
    HttpTarget,
    LlamaCppCompletion,
    OllamaChat,
    OpenAIChat,
)
from llmlab.bench.prometheus import read_counter, read_info
from llmlab.bench.records import (
    DEFINITIONS,
    BenchmarkError,
    BenchmarkResult,
    RequestRecord,
    Stats,
    json_ready,
    summarize,
)
from llmlab.bench.report import plot_sweep, to_frame, to_markdown, write_csv, write_json
from llmlab.bench.runner import default_workload, poisson_arrivals, run, sweep
from llmlab.bench.targets import Chat, InProcess, Piece, Target

__all__ = [
    "DEFINITIONS",
    "BenchmarkError",
    "BenchmarkResult",
    "Chat",
    "CourseChat",
    "HttpTarget",
    "InProcess",
    "LlamaCppCompletion",
    "OllamaChat",
    "OpenAIChat",
    "Piece",
    "RequestRecord",
    "Stats",
    "Target",
    "default_workload",
    "plot_sweep",
    "poisson_arrivals",
    "read_counter",
    "read_info",
    "run",
    "json_ready",
    "summarize",
    "sweep",
    "to_frame",
    "to_markdown",
    "write_csv",
    "write_json",
]
