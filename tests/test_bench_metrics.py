"""The harness's arithmetic on hand-written records, its reports, and its load shapes."""

import asyncio
import json
import math
import statistics

import pytest

from llmlab.bench import (
    BenchmarkError,
    Piece,
    RequestRecord,
    Target,
    plot_sweep,
    poisson_arrivals,
    run,
    summarize,
    sweep,
    to_markdown,
    write_csv,
    write_json,
)
from llmlab.bench.timeline import poisson_timeline_arrivals, timeline_frame, timeline_summary

RECORDS = [
    # 3 tokens in 3 chunks: TTFT 100 ms, E2E 400 ms, gaps 100 and 200 ms, TPOT 300 / 2 = 150 ms
    RequestRecord(0.0, [0.1, 0.2, 0.4], usage_tokens=3, prompt_tokens=10, complete=True),
    # 5 tokens in 2 chunks (the server's usage counts, not the chunks): TPOT 100 / 4 = 25 ms
    RequestRecord(1.0, [1.3, 1.4], usage_tokens=5, prompt_tokens=20, complete=True),
    # one token, no usage: counted from its one chunk, and no TPOT
    RequestRecord(2.0, [2.5], complete=True),
    # failed half-way: counted and listed, no latencies or tokens
    RequestRecord(3.0, [3.05], usage_tokens=1, error="ReadError: connection reset"),
    # an answer without text has no TTFT: a failure too
    RequestRecord(4.0, [], complete=True),
    # a stream that ended without saying the answer was complete was cut short
    RequestRecord(5.0, [5.1, 5.2]),
]


@pytest.fixture(scope="module")
def result():
    return summarize(RECORDS, 2.0, target="server", concurrency=4)


def test_requests_and_throughputs_count_only_completed_requests(result):
    assert (result.completed, result.failed) == (3, 3)
    assert result.errors == (
        "ReadError: connection reset",
        "the answer carried no text",
        "the answer ended before it was complete",
    )
    assert (result.output_tokens, result.input_tokens) == (3 + 5 + 1, 30)
    assert result.request_throughput == pytest.approx(3 / 2.0)
    assert result.output_throughput == pytest.approx(9 / 2.0)


def test_latencies_are_vllm_definitions_in_milliseconds(result):
    # numpy.percentile, linear: p90 of [100, 300, 500] is 300 + 0.8 * 200
    assert result.ttft_ms.mean == pytest.approx(300)
    assert (result.ttft_ms.p50, result.ttft_ms.p90, result.ttft_ms.p99) == pytest.approx(
        (300, 460, 496)
    )
    # TPOT excludes the one-token request: [150, 25]
    assert (result.tpot_ms.mean, result.tpot_ms.p50) == pytest.approx((87.5, 87.5))
    assert (result.tpot_ms.p90, result.tpot_ms.p99) == pytest.approx((137.5, 148.75))
    # ITL pools the gaps of all requests: [100, 200] and [100]
    assert result.itl_ms.mean == pytest.approx(400 / 3)
    assert (result.itl_ms.p50, result.itl_ms.p90, result.itl_ms.p99) == pytest.approx(
        (100, 180, 198)
    )
    assert result.e2e_ms.mean == pytest.approx(1300 / 3)
    assert (result.e2e_ms.p50, result.e2e_ms.p90, result.e2e_ms.p99) == pytest.approx(
        (400, 480, 498)
    )


def test_row_names_every_unit_and_json_has_no_nan(result, tmp_path):
    row = result.row()
    assert row["requests"] == 6 and row["failed"] == 3 and row["concurrency"] == 4
    assert row["TTFT p90 (ms)"] == pytest.approx(460)
    assert {"output tokens/s", "requests/s", "TPOT p99 (ms)", "ITL mean (ms)"} <= set(row)

    failed = summarize([RequestRecord(0.0, error="ConnectError: refused")], 1.0, target="down")
    assert math.isnan(failed.ttft_ms.p50)
    data = failed.to_dict()
    assert data["ttft_ms"]["p50"] is None and data["errors"] == ["ConnectError: refused"]
    path = write_json([result, failed], tmp_path / "results.json", records=True)
    saved = json.loads(path.read_text(), parse_constant=pytest.fail)  # NaN would call it
    assert len(saved["results"][0]["records"]) == 6 and "TTFT" in saved["definitions"]
    with pytest.raises(BenchmarkError, match="1 of 1 requests to down failed.*refused"):
        failed.raise_for_failures()


def test_markdown_csv_and_plot(result, tmp_path):
    other = summarize(RECORDS[:2], 1.0, target="other", concurrency=1)
    table = to_markdown([other, result])
    header, rule, *rows = table.splitlines()[:4]
    assert header.startswith("| target | concurrency |") and rule.startswith("|---|---:|")
    assert rows[0].startswith("| other | 1 |") and "- TPOT: " in table
    assert write_csv([other, result], tmp_path / "r.csv").read_text().count("\n") == 3

    figure = plot_sweep([other, result, summarize(RECORDS, 1.0, target="other", concurrency=4)])
    throughput, ttft = figure.axes
    assert [line.get_label() for line in throughput.lines] == ["other", "server"]
    assert len(ttft.lines) == 4 and throughput.get_xscale() == "log"
    figure.savefig(tmp_path / "sweep.png")


def test_poisson_arrivals_are_seeded_with_the_right_mean_gap():
    arrivals = poisson_arrivals(100_001, rate=4.0, seed=1)
    assert arrivals[:5] == poisson_arrivals(5, rate=4.0, seed=1)
    assert arrivals[:5] != poisson_arrivals(5, rate=4.0, seed=2)
    gaps = [later - earlier for earlier, later in zip(arrivals[:-1], arrivals[1:], strict=True)]
    assert arrivals[0] == 0 and min(gaps) >= 0
    # mean 1/4 s; its standard error over 10^5 gaps is 0.25 / 316 = 0.0008, the bound 6 of them
    assert statistics.fmean(gaps) == pytest.approx(0.25, abs=0.005)
    # exponential: the standard deviation equals the mean
    assert statistics.stdev(gaps) == pytest.approx(0.25, abs=0.01)
    with pytest.raises(ValueError, match="positive"):
        poisson_arrivals(3, rate=0)


class Sleeper(Target):
    """Answers after 50 ms with two pieces; counts how many requests are in flight."""

    name = "sleeper"

    def __init__(self):
        self.in_flight = self.most_in_flight = self.calls = 0

    async def pieces(self, request):
        self.calls += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.05)
        yield Piece("Hello")
        yield Piece(" there", output_tokens=2, done=True)
        self.in_flight -= 1


class Scripted(Target):
    """Answers every request with the same pieces, or breaks after them."""

    name = "scripted"

    def __init__(self, *pieces, then=None):
        self.script, self.then = pieces, then

    async def pieces(self, request):
        for piece in self.script:
            yield piece
        if self.then:
            raise self.then


def test_send_records_what_the_pieces_say():
    target = Scripted(
        Piece(),  # the answer started
        Piece("Hel", model="replica-1"),
        Piece("lo", done=True),
        Piece(output_tokens=2, prompt_tokens=40, cached_tokens=32),  # a usage chunk follows
    )
    record = asyncio.run(target.send([]))
    assert record.failure is None
    assert (record.text, record.model, record.usage_tokens) == ("Hello", "replica-1", 2)
    assert (record.prompt_tokens, record.cached_tokens) == (40, 32)
    assert record.sent_s <= record.first_byte_s <= record.chunk_times_s[0]
    assert len(record.chunk_times_s) == 2


def test_send_tells_a_refused_request_from_one_broken_mid_stream():
    refused = asyncio.run(Scripted(then=ConnectionRefusedError("refused")).send([]))
    assert refused.first_byte_s is None and refused.failure == "ConnectionRefusedError: refused"
    broken = asyncio.run(Scripted(Piece(), Piece("Hel")).send([]))  # ended without a finish
    assert broken.first_byte_s is not None and broken.text == "Hel"
    assert broken.failure == "the answer ended before it was complete"


def test_run_keeps_concurrency_and_counts_the_warm_up_out():
    target = Sleeper()
    result = asyncio.run(run(target, [[]] * 6, concurrency=2, progress=False))
    assert target.most_in_flight == 2
    assert target.calls == 7  # the warm-up went first...
    assert (result.completed, result.output_tokens) == (6, 12)  # ...and is not counted
    span = max(r.chunk_times_s[-1] for r in result.records) - min(r.sent_s for r in result.records)
    assert result.duration_s >= span >= 3 * 0.05  # three rounds of two (sleeps never end early)


@pytest.mark.parametrize(("waves", "sent_at_4"), [(None, 8), ("2", 8), ("1", 4)])
def test_a_sweep_fills_every_slot_the_set_number_of_times(monkeypatch, waves, sent_at_4):
    """Two waves by default (every slot refills once); bin/test runs one; never under the
    minimum."""
    if waves is None:
        monkeypatch.delenv("LLMLAB_SWEEP_WAVES", raising=False)
    else:
        monkeypatch.setenv("LLMLAB_SWEEP_WAVES", waves)
    results = asyncio.run(sweep(Sleeper(), [1, 4], min_requests=4, progress=False))
    assert [result.completed for result in results] == [4, sent_at_4]


def test_a_sweep_refuses_a_wave_count_that_is_not_a_whole_number(monkeypatch):
    monkeypatch.setenv("LLMLAB_SWEEP_WAVES", "half")
    with pytest.raises(ValueError, match="LLMLAB_SWEEP_WAVES must be a whole number"):
        asyncio.run(sweep(Sleeper(), [1], progress=False))


def test_run_at_a_request_rate_spaces_the_requests():
    target = Sleeper()
    result = asyncio.run(run(target, [[]] * 5, request_rate=20.0, seed=3, progress=False))
    sent = [record.sent_s - result.records[0].sent_s for record in result.records]
    expected = poisson_arrivals(5, 20.0, seed=3)
    assert sent == pytest.approx(expected, abs=0.03)
    assert result.request_rate == 20.0 and result.concurrency is None


def test_a_sweep_of_a_warm_server_sends_only_the_levels_requests(monkeypatch):
    monkeypatch.setenv("LLMLAB_SWEEP_WAVES", "2")
    warmed, cold = Sleeper(), Sleeper()
    asyncio.run(sweep(warmed, [1, 2], min_requests=2, progress=False))
    asyncio.run(sweep(cold, [1, 2], min_requests=2, warmup=False, progress=False))
    assert (warmed.calls, cold.calls) == (1 + 2 + 4, 2 + 4)


def test_a_time_line_comes_to_its_ttft_percentiles_and_throughput():
    def answered(sent: float, first: float, done: float, tokens: int) -> RequestRecord:
        return RequestRecord(sent, [first, done], usage_tokens=tokens, text="x", complete=True)

    records = [answered(10.0, 10.1, 11.0, 10), answered(11.0, 11.5, 13.0, 20),
               answered(12.0, 12.2, 14.0, 30)]  # fmt: skip
    frame = timeline_frame(records)
    assert frame["sent"].tolist() == [0, 1, 2] and frame["done"].tolist() == [1, 3, 4]
    summary = timeline_summary(records)
    assert summary["TTFT p50 (ms)"] == pytest.approx(200)  # waits 100, 500, 200 ms
    assert summary["TTFT p90 (ms)"] == pytest.approx(440)  # linear between 200 and 500
    assert summary["output tokens/s"] == pytest.approx(60 / 4)  # first sent 10 s, last done 14 s


def test_poisson_arrivals_for_a_time_line_share_moments_across_servers():
    arrivals = poisson_timeline_arrivals(5, rate=4, tokens=64, seed=3)
    assert [a.at_s for a in arrivals] == poisson_arrivals(5, 4, seed=3)
    assert {a.tokens for a in arrivals} == {64}
