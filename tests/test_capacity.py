"""The capacity planner's arithmetic against cases worked out by hand."""

import pytest

from llmlab.sizing.capacity import (
    CapacityError,
    MeasuredLevel,
    ReplicaShape,
    check_source_table,
    in_flight,
    min_gpu_memory_gib,
    plan_capacity,
    replica_shape,
    sustainable_concurrency,
)
from llmlab.sizing.memory import Architecture, GiB, kv_bytes_per_token

# 4 Gi parameters: 8 GiB in bfloat16. KV: 2 x 32 layers x 8 heads x 128 x 2 bytes = 128 KiB a
# token, so a 4096-token sequence takes exactly 0.5 GiB. Runtime (llmlab.sizing.memory): 0.5 GiB
# per GPU + 10% of the weights = 1.3 GiB on one GPU, 1.8 on two.
MODEL = Architecture(4 * GiB, num_layers=32, num_kv_heads=8, head_dim=128)

LEVELS = [
    MeasuredLevel(concurrency=1, output_tokens_per_s=40, ttft_p90_s=0.1, tpot_p50_s=0.020),
    MeasuredLevel(concurrency=4, output_tokens_per_s=140, ttft_p90_s=0.2, tpot_p50_s=0.030),
    MeasuredLevel(concurrency=16, output_tokens_per_s=380, ttft_p90_s=0.8, tpot_p50_s=0.050),
    MeasuredLevel(concurrency=32, output_tokens_per_s=450, ttft_p90_s=2.5, tpot_p50_s=0.080),
]


def test_kv_cache_per_token():
    assert kv_bytes_per_token(MODEL) == 128 * 1024


def test_one_gpu_when_weights_and_a_sequence_fit():
    # 20 GiB x 0.9 = 18 GiB; minus 8 GiB of weights and 1.3 of runtime leaves 8.7 = 17 sequences.
    shape = replica_shape(MODEL, gpu_memory_gib=20)
    assert shape == ReplicaShape(
        1, 1, weights_gib_per_gpu=8, kv_cache_gib=pytest.approx(8.7), max_sequences=17
    )
    assert shape.vllm_args() == ["--tensor-parallel-size", "1"]


def test_tensor_parallel_when_more_sequences_are_needed():
    # 20 sequences take 10 GiB: one GPU (18 - 8 - 1.3) is short. Two: 36 - 8 - 1.8 = 26.2 GiB
    # of KV cache = 52 sequences, 4 GiB of weights each.
    shape = replica_shape(MODEL, gpu_memory_gib=20, min_sequences=20)
    assert (shape.tensor_parallel, shape.pipeline_parallel, shape.gpus) == (2, 1, 2)
    assert shape.weights_gib_per_gpu == 4
    assert shape.max_sequences == 52


def test_pipeline_parallel_across_nodes_when_one_node_is_not_enough():
    # 40 sequences (20 GiB): 8 GPUs of 4 GiB hold 28.8 GiB, less than 8 + 20 + (4 + 0.8) of
    # runtime; 2 nodes hold 57.6, more than 8 + 20 + (8 + 0.8).
    shape = replica_shape(MODEL, gpu_memory_gib=4, min_sequences=40)
    assert (shape.tensor_parallel, shape.pipeline_parallel) == (8, 2)
    assert shape.vllm_args() == [
        "--tensor-parallel-size", "8", "--pipeline-parallel-size", "2",
    ]  # fmt: skip


def test_min_gpu_memory_is_the_inverse_of_the_shape():
    # (8 GiB weights + 0.5 GiB sequence + 1.3 GiB runtime) / 0.9
    assert min_gpu_memory_gib(MODEL) == pytest.approx(9.8 / 0.9)
    assert replica_shape(MODEL, gpu_memory_gib=9.8 / 0.9 + 0.01).max_sequences == 1
    assert replica_shape(MODEL, gpu_memory_gib=9.8 / 0.9 - 0.01).gpus == 2


def test_bad_input_is_a_clear_error():
    with pytest.raises(CapacityError, match="Unknown dtype 'fp6'"):
        replica_shape(MODEL, gpu_memory_gib=20, dtype="fp6")
    with pytest.raises(CapacityError, match="leaves nothing after the runtime"):
        replica_shape(MODEL, gpu_memory_gib=0.5)


def test_busiest_level_within_both_budgets():
    level = sustainable_concurrency(LEVELS, ttft_budget_s=1.0, tpot_budget_s=0.06)
    assert level.concurrency == 16
    # A tighter time-per-token budget rules out 16 even though its TTFT is fine.
    assert sustainable_concurrency(LEVELS, ttft_budget_s=1.0, tpot_budget_s=0.04).concurrency == 4


def test_a_budget_no_level_meets_names_the_closest():
    with pytest.raises(
        CapacityError, match=r"Even 1 concurrent request\(s\) gave 0.10 s and 20 ms"
    ):
        sustainable_concurrency(LEVELS, ttft_budget_s=0.05, tpot_budget_s=0.06)


def test_replicas_limited_by_latency():
    shape = replica_shape(MODEL, gpu_memory_gib=20)  # 17 sequences fit
    plan = plan_capacity(100, shape, LEVELS, ttft_budget_s=1.0, tpot_budget_s=0.06)
    assert (plan.per_replica, plan.limited_by, plan.replicas, plan.total_gpus) == (
        16, "latency", 7, 7,
    )  # fmt: skip


def test_replicas_limited_by_kv_cache():
    shape = replica_shape(MODEL, gpu_memory_gib=14)  # 14 x 0.9 - 8 - 1.3 = 3.3 GiB: 6 sequences
    assert shape.max_sequences == 6
    plan = plan_capacity(100, shape, LEVELS, ttft_budget_s=1.0, tpot_budget_s=0.06)
    assert (plan.per_replica, plan.limited_by, plan.replicas) == (6, "KV cache memory", 17)
    assert plan.row()["GPUs"] == 17


def test_littles_law():
    # 300 users, one request a minute each, 6 s per request: 30 in flight.
    assert in_flight(300, 1, 6) == 30


def test_the_source_chapters_table_holds_up_to_13b_and_30b_needs_more_than_one_small_gpu():
    rows = {row["size"]: row for row in check_source_table()}
    # The 7B and 13B rows' ranges hold for bf16 weights, one 4k sequence and vLLM's runtime.
    assert 16 <= rows["7B"]["needs (GiB)"] <= 24
    assert 28 <= rows["13B"]["needs (GiB)"] <= 40
    assert rows["30B+"]["needs (GiB)"] >= 64
    # "Distributed" for 30B+ is true on 24 and 48 GiB GPUs, not on an 80 GiB one.
    assert rows["30B+"]["GPUs of 24 GiB"] == 4
    assert rows["30B+"]["GPUs of 48 GiB"] == 2
    assert rows["30B+"]["GPUs of 80 GiB"] == 1
    assert rows["7B"]["GPUs of 24 GiB"] == 1


def test_a_running_server_is_planned_by_its_slots():
    shape = ReplicaShape.of_server(4)
    plan = plan_capacity(100, shape, LEVELS, ttft_budget_s=1.0, tpot_budget_s=0.06)
    assert (plan.per_replica, plan.limited_by, plan.replicas) == (4, "slots", 25)
    with pytest.raises(CapacityError, match="at least 1"):
        ReplicaShape.of_server(0)
