"""Plan a deployment: GPUs per replica from memory, replicas from measured latency.

Two questions decide how many GPUs a service needs, and they have different answers:

* **How many GPUs does one copy of the model need?** Memory, as the course's memory model
  counts it (``llmlab.sizing.memory``): the weights, split across the GPUs of a tensor-parallel
  group, plus room for the KV cache of at least one full-length sequence, plus the runtime of
  every GPU. vLLM takes only ``gpu_memory_utilization`` (0.9) of each card. When eight GPUs
  (one node) are not enough, pipeline parallelism spreads the layers over several nodes.
* **How many copies does the traffic need?** Latency: the benchmark harness measures one
  replica at several concurrencies; the largest one that still meets the time-to-first-token
  and time-per-output-token budgets is what a replica can carry. The KV cache can cap it lower.

The planner never extrapolates beyond what was measured: a budget that no measured level meets
is an error that says which level came closest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from llmlab.bench.records import BenchmarkResult
from llmlab.errors import LLMLabError
from llmlab.sizing.memory import (
    REFERENCE_MODELS,
    RUNTIME_GIB_PER_DEVICE,
    Architecture,
    bytes_per_param,
    estimate_memory,
)

#: Tensor-parallel sizes vLLM is run with: powers of two up to one node's GPUs.
TENSOR_PARALLEL_SIZES = (1, 2, 4, 8)

#: The source chapter's hardware table: model size, GPU memory (GB) and the method it names.
#: Each row stands for the published model named first.
SOURCE_TABLE: tuple[tuple[str, str, tuple[float, float | None], str], ...] = (
    ("Qwen2.5-3B-Instruct", "1.5B-3B", (6, 8), "Transformers/vLLM"),
    ("Qwen2.5-7B-Instruct", "7B", (16, 24), "Transformers/vLLM"),
    ("Llama-2-13b-chat", "13B", (28, 40), "vLLM"),
    ("Qwen2.5-32B-Instruct", "30B+", (64, None), "vLLM/distributed"),
)


class CapacityError(LLMLabError, ValueError):
    """A plan that cannot be made from what was given, with the reason."""


@dataclass(frozen=True)
class ReplicaShape:
    """The GPUs one copy of the model takes, and how much KV cache they leave."""

    tensor_parallel: int
    pipeline_parallel: int
    weights_gib_per_gpu: float
    kv_cache_gib: float  # all GPUs of the replica together
    max_sequences: int  # full-length sequences the KV cache holds at once

    @classmethod
    def of_server(cls, slots: int) -> ReplicaShape:
        """A replica that is not sized from GPU memory but already runs: one server that takes
        ``slots`` sequences at once (llama-server's ``--parallel``, vLLM's ``--max-num-seqs``).
        Its memory figures are unknown (NaN); its one "GPU" is whatever runs it."""
        if slots < 1:
            raise CapacityError(f"a server takes at least 1 sequence at once, not {slots}")
        return cls(1, 1, math.nan, math.nan, slots)

    @property
    def gpus(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel

    def vllm_args(self) -> list[str]:
        """The vLLM flags that give this shape."""
        args = ["--tensor-parallel-size", str(self.tensor_parallel)]
        if self.pipeline_parallel > 1:
            args += ["--pipeline-parallel-size", str(self.pipeline_parallel)]
        return args


def replica_shape(
    arch: Architecture,
    *,
    gpu_memory_gib: float,
    dtype: str = "bfloat16",
    context_length: int = 4096,
    gpu_memory_utilization: float = 0.9,
    min_sequences: int = 1,
    gpus_per_node: int = 8,
) -> ReplicaShape:
    """The fewest GPUs that hold the weights and ``min_sequences`` full-length sequences.

    Tensor parallelism first (it splits every layer, so it needs the fast links inside one
    node), then pipeline parallelism across nodes of ``gpus_per_node`` GPUs each, as vLLM's
    documentation advises. ``gpu_memory_utilization`` is vLLM's flag of the same name.
    """
    try:
        bytes_per_param(dtype)
    except ValueError as error:
        raise CapacityError(str(error)) from None
    if not 0 < gpu_memory_utilization <= 1:
        raise CapacityError("gpu_memory_utilization is a fraction between 0 and 1")
    if gpu_memory_gib * gpu_memory_utilization <= RUNTIME_GIB_PER_DEVICE:
        raise CapacityError(f"A {gpu_memory_gib:g} GiB GPU leaves nothing after the runtime")
    tensor_sizes = [size for size in TENSOR_PARALLEL_SIZES if size <= gpus_per_node]
    shapes = [(tp, 1) for tp in tensor_sizes]
    shapes += [(tensor_sizes[-1], pp) for pp in range(2, 65)]
    for tp, pp in shapes:
        needed = estimate_memory(
            arch, dtype, context_length=context_length, batch_size=min_sequences, devices=tp * pp
        )
        room = tp * pp * gpu_memory_gib * gpu_memory_utilization
        if needed.total_gib <= room:
            kv_cache = room - needed.weights_gib - needed.runtime_gib
            sequence = needed.kv_cache_gib / min_sequences
            return ReplicaShape(
                tp, pp, needed.weights_gib / (tp * pp), kv_cache, int(kv_cache // sequence)
            )
    raise CapacityError(
        f"{needed.weights_gib:.0f} GiB of weights do not fit on 64 nodes of {gpus_per_node} "
        f"GPUs of {gpu_memory_gib:g} GiB"
    )


@dataclass(frozen=True)
class MeasuredLevel:
    """One replica measured at one concurrency by the benchmark harness."""

    concurrency: int
    output_tokens_per_s: float
    ttft_p90_s: float
    tpot_p50_s: float

    @classmethod
    def from_result(cls, result: BenchmarkResult) -> MeasuredLevel:
        if result.concurrency is None:
            raise CapacityError("Plan from fixed-concurrency runs, not request-rate runs")
        return cls(
            result.concurrency,
            result.output_throughput,
            result.ttft_ms.p90 / 1000,
            result.tpot_ms.p50 / 1000,
        )


def sustainable_concurrency(
    levels: Iterable[MeasuredLevel], *, ttft_budget_s: float, tpot_budget_s: float
) -> MeasuredLevel:
    """The busiest measured level whose p90 TTFT and median TPOT are within budget."""
    levels = sorted(levels, key=lambda level: level.concurrency)
    if not levels:
        raise CapacityError("No measured levels: run the benchmark harness on one replica first")
    within = [
        level
        for level in levels
        if level.ttft_p90_s <= ttft_budget_s and level.tpot_p50_s <= tpot_budget_s
    ]
    if not within:
        best = levels[0]
        raise CapacityError(
            f"No measured level meets TTFT p90 <= {ttft_budget_s} s and TPOT <= "
            f"{tpot_budget_s * 1000:.0f} ms. Even {best.concurrency} concurrent request(s) gave "
            f"{best.ttft_p90_s:.2f} s and {best.tpot_p50_s * 1000:.0f} ms: a faster replica "
            "(bigger GPU, smaller or quantized model) is needed, not more replicas."
        )
    return within[-1]


@dataclass(frozen=True)
class CapacityPlan:
    """How many replicas and GPUs serve ``users`` at once within the budgets."""

    users: int
    shape: ReplicaShape
    per_replica: int  # concurrent requests one replica carries within budget
    limited_by: str  # "latency", "KV cache memory", or a running server's "slots"
    replicas: int

    @property
    def total_gpus(self) -> int:
        return self.replicas * self.shape.gpus

    def row(self) -> dict[str, object]:
        return {
            "users": self.users,
            "GPUs per replica": self.shape.gpus,
            "requests per replica": self.per_replica,
            "limited by": self.limited_by,
            "replicas": self.replicas,
            "GPUs": self.total_gpus,
        }


def plan_capacity(
    users: int,
    shape: ReplicaShape,
    levels: Sequence[MeasuredLevel],
    *,
    ttft_budget_s: float,
    tpot_budget_s: float,
) -> CapacityPlan:
    """Replicas for ``users`` requests in flight at once: the tighter of latency and memory.

    Users who read and type between requests are not all in flight: by Little's law, in-flight
    requests = request rate x seconds per request (see ``in_flight``).
    """
    if users < 1:
        raise CapacityError("users must be at least 1")
    level = sustainable_concurrency(
        levels, ttft_budget_s=ttft_budget_s, tpot_budget_s=tpot_budget_s
    )
    if shape.max_sequences < level.concurrency:
        memory = "slots" if math.isnan(shape.kv_cache_gib) else "KV cache memory"
        per_replica, limited_by = shape.max_sequences, memory
    else:
        per_replica, limited_by = level.concurrency, "latency"
    return CapacityPlan(users, shape, per_replica, limited_by, math.ceil(users / per_replica))


def in_flight(users: int, requests_per_user_per_min: float, seconds_per_request: float) -> int:
    """Little's law: requests in flight = arrival rate x time each request spends in service."""
    return math.ceil(users * requests_per_user_per_min / 60 * seconds_per_request)


def min_gpu_memory_gib(
    arch: Architecture,
    *,
    dtype: str = "bfloat16",
    context_length: int = 4096,
    gpu_memory_utilization: float = 0.9,
) -> float:
    """The smallest single GPU vLLM serves one full-length sequence on (the inverse of
    ``replica_shape`` at one GPU): the memory model's total, over vLLM's utilization."""
    needed = estimate_memory(arch, dtype, context_length=context_length)
    return needed.total_gib / gpu_memory_utilization


def check_source_table(
    gpu_sizes_gib: Sequence[float] = (24, 48, 80), *, context_length: int = 4096
) -> list[dict[str, object]]:
    """Each row of the source chapter's table, next to what the memory model says it needs.

    "needs" is ``estimate_memory`` for one user in bfloat16 (chapter 01's figure); "smallest
    GPU" adds the 10% of the card that vLLM leaves alone (``min_gpu_memory_gib``). The other
    columns count GPUs per replica.
    """
    rows = []
    for model, size, (low, high), method in SOURCE_TABLE:
        arch = REFERENCE_MODELS[model]
        needed = estimate_memory(arch, context_length=context_length).total_gib
        smallest = min_gpu_memory_gib(arch, context_length=context_length)
        row: dict[str, object] = {
            "size": size,
            "model": model,
            "table (GB)": f"{low}-{high}" if high else f"{low}+",
            "needs (GiB)": round(needed, 1),
            "smallest GPU for vLLM (GiB)": round(smallest, 1),
            "table's method": method,
        }
        for gib in gpu_sizes_gib:
            row[f"GPUs of {gib:g} GiB"] = replica_shape(
                arch, gpu_memory_gib=gib, context_length=context_length
            ).gpus
        rows.append(row)
    return rows
