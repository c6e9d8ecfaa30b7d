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
from llmlab.sizing.memory import REFERENCE_MODELS, Architecture, GiB, kv_bytes_per_token
from llmlab.sizing.paged_kv import FREE, KVPool, plot_kv_pool, pool_image
from llmlab.sizing.parallel_split import owners, part_label, plot_parallelism, weights_per_gpu_gib

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


def test_each_split_gives_every_gpu_its_share_of_the_weights():
    tensor = owners("tensor", layers=64, gpus=4)
    pipeline = owners("pipeline", layers=64, gpus=4)
    data = owners("data", layers=64, gpus=4)
    assert all(set(row) == {0, 1, 2, 3} for row in tensor)  # every GPU in every layer
    assert all(len(set(row)) == 1 for row in pipeline)  # each layer on one GPU
    assert [int((pipeline[:, 0] == gpu).sum()) for gpu in range(4)] == [16, 16, 16, 16]
    assert data.shape == (64, 4 * tensor.shape[1])  # four whole copies
    assert [part_label("pipeline", pipeline, gpu) for gpu in (0, 3)] == [
        "layers\n0-15",
        "layers\n48-63",
    ]
    arch = REFERENCE_MODELS["Qwen2.5-32B-Instruct"]
    whole = arch.num_params * 2 / 2**30
    assert weights_per_gpu_gib(arch, "tensor", 4, "bfloat16") == pytest.approx(whole / 4)
    assert weights_per_gpu_gib(arch, "data", 4, "bfloat16") == pytest.approx(whole)


def test_pipeline_stages_are_as_even_as_the_layer_count_allows():
    stages = owners("pipeline", layers=30, gpus=4)[:, 0]
    assert sorted(int((stages == gpu).sum()) for gpu in range(4)) == [7, 7, 8, 8]
    with pytest.raises(ValueError, match="tensor, pipeline, data"):
        owners("expert", layers=4, gpus=2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2 layers cannot make 4 pipeline stages"):
        owners("pipeline", layers=2, gpus=4)


def test_the_parallelism_figure_titles_each_split_with_its_share():
    import matplotlib

    matplotlib.use("Agg")
    arch = REFERENCE_MODELS["Qwen2.5-32B-Instruct"]
    fig = plot_parallelism(arch, "Qwen2.5-32B-Instruct", gpus=4)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        "tensor parallel: 15.3 GiB of weights per GPU",
        "pipeline parallel: 15.3 GiB of weights per GPU",
        "data parallel: 61.1 GiB of weights per GPU",
    ]
    assert all(ax.get_ylabel() and ax.get_xlabel() for ax in fig.axes)


def test_a_paged_pool_holds_requests_by_the_block_not_by_the_longest_answer():
    pool = KVPool.from_info({"block_size": "128", "num_gpu_blocks": "364", "engine": "0"})
    assert pool.tokens == 46_592  # vLLM's "CPU KV cache size: 46,592 tokens" for this pool
    assert pool.blocks_for(91) == 1 and pool.blocks_for(129) == 2
    assert pool.requests_that_fit(2048) == 22  # vLLM's "Maximum concurrency ... 22.75x", whole
    assert pool.requests_that_fit(91) == 364
    with pytest.raises(ValueError, match="at least one token"):
        pool.blocks_for(0)


def test_the_pool_figure_colours_held_blocks_and_leaves_the_rest_free():
    pool = KVPool(blocks=10, block_size=16)
    image = pool_image(pool, requests=3, held_blocks=3, used_blocks=1, columns=4).reshape(-1, 4)
    assert image.shape == (12, 4)  # 3 rows of 4 cells, the last two past the pool's end
    alphas = image[:, 3].round(2).tolist()
    # requests 0-2 hold 3 blocks each, one used (solid) and two reserved (pale); block 9 free
    assert alphas[:9] == [1.0, 0.25, 0.25] * 3
    assert tuple(image[9]) == FREE
    with pytest.raises(ValueError, match="over max_model_len"):
        plot_kv_pool(KVPool(364, 128), tokens_per_request=4096, max_model_len=2048)
    fig = plot_kv_pool(KVPool(364, 128), tokens_per_request=91, max_model_len=2048)
    assert [ax.get_title().splitlines()[1] for ax in fig.axes] == [
        "16 requests hold 256 of 364 blocks; 22 would fit",
        "16 requests hold 16 of 364 blocks; 364 would fit",
    ]
