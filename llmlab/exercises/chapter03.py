"""Chapter 03's exercise: ``metrics``, TTFT, TPOT and end-to-end latency from one request's
chunk times, checked against the benchmark harness's ``RequestRecord``."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from numbers import Real

from llmlab.bench.records import RequestRecord
from llmlab.exercises.common import (
    ExerciseError,
    call_student,
    function_name,
    kind_of,
    passed,
)

#: (case, sent_s, chunk_times_s, output_tokens): requests as a client records them.
METRIC_CASES: list[tuple[str, float, list[float], int]] = [
    ("an answer of 5 tokens in 5 chunks", 1000.0, [1000.25, 1000.3, 1000.36, 1000.41, 1000.47], 5),
    ("an answer of 9 tokens in 3 chunks", 2000.0, [2000.5, 2000.6, 2000.8], 9),
    ("a one-token answer", 3000.0, [3000.2], 1),
]
METRIC_KEYS = ("ttft_s", "tpot_s", "e2e_s")


def check_serving_metrics(metrics: Callable[[float, list[float], int], dict]) -> None:
    """Check ``metrics(sent_s, chunk_times_s, output_tokens) -> {"ttft_s", "tpot_s", "e2e_s"}``
    against ``RequestRecord``, which follows vLLM's serving benchmark."""
    __tracebackhide__ = True
    name = function_name(metrics)
    for case, sent_s, chunk_times_s, tokens in METRIC_CASES:
        where = (
            f"{name}, on {case} "
            f"(sent_s={sent_s}, chunk_times_s={chunk_times_s}, output_tokens={tokens})"
        )
        hints: dict[type[BaseException], str] = {}
        if tokens == 1:
            hints[ZeroDivisionError] = (
                "A one-token answer has no tokens after the first, so it has no TPOT: return "
                "None for tpot_s when output_tokens is 1, instead of dividing by 0."
            )
        got = call_student(metrics, (sent_s, list(chunk_times_s), tokens), where, hints)
        record = RequestRecord(sent_s, list(chunk_times_s), usage_tokens=tokens)
        problem = _metrics_problem(got, record)
        if problem:
            raise ExerciseError(f"{where}: {problem}")
    passed(f"{name} matches vLLM's serving-benchmark definitions on {len(METRIC_CASES)} requests")


def _metrics_problem(got: object, record: RequestRecord) -> str | None:
    if not isinstance(got, Mapping):
        return f"it returned {kind_of(got)}; return a dict with the keys {METRIC_KEYS}."
    missing = [key for key in METRIC_KEYS if key not in got]
    if missing:
        return f"the dict lacks {missing} (it has {sorted(map(str, got))}); use {METRIC_KEYS}."
    for key in METRIC_KEYS:
        value = got[key]
        if not (value is None and key == "tpot_s") and not _is_number(value):
            return f"{key} is {value!r}; it must be a number of seconds."
    return (
        _ttft_problem(got["ttft_s"], record)
        or _e2e_problem(got["e2e_s"], record)
        or _tpot_problem(got["tpot_s"], record)
    )


def _ttft_problem(ttft: float, record: RequestRecord) -> str | None:
    times = record.chunk_times_s
    if _close(ttft, record.ttft_s):
        return None
    if _close(ttft, times[0]):
        return "ttft_s is a clock reading (the first chunk's), not a duration: subtract sent_s."
    if len(times) > 1 and _close(ttft, times[1] - times[0]):
        return (
            "ttft_s is the gap from the first chunk to the second (that is an inter-token "
            "latency). TTFT starts when the request is sent: chunk_times_s[0] - sent_s."
        )
    return (
        f"ttft_s is {ttft:.6g} s, expected {record.ttft_s:.6g} s. TTFT is the time from sending "
        "the request to the first chunk: chunk_times_s[0] - sent_s."
    )


def _e2e_problem(e2e: float, record: RequestRecord) -> str | None:
    times = record.chunk_times_s
    if _close(e2e, record.e2e_s):
        return None
    if len(times) > 1 and _close(e2e, record.ttft_s):
        return (
            "e2e_s stops at the first chunk, so it equals TTFT. End-to-end latency runs until the "
            "answer is complete, the last chunk: chunk_times_s[-1] - sent_s."
        )
    if _close(e2e, times[-1]):
        return "e2e_s is a clock reading (the last chunk's), not a duration: subtract sent_s."
    if len(times) > 1 and _close(e2e, times[-1] - times[0]):
        return (
            "e2e_s starts at the first chunk. It starts when the request is sent, so that it "
            "includes queueing and prefill: chunk_times_s[-1] - sent_s."
        )
    return (
        f"e2e_s is {e2e:.6g} s, expected {record.e2e_s:.6g} s. E2E is the time from sending the "
        "request to the last chunk: chunk_times_s[-1] - sent_s."
    )


def _tpot_problem(tpot: float | None, record: RequestRecord) -> str | None:
    expected, tokens = record.tpot_s, record.output_tokens
    if expected is None:
        if tpot is None:
            return None
        return (
            f"tpot_s is {tpot!r} for a one-token answer. It has no tokens after the first, so "
            "its TPOT is undefined: return None (vLLM leaves such requests out of the TPOT "
            "figures; a 0 would pull the average down)."
        )
    if tpot is None:
        return f"tpot_s is None for an answer of {tokens} tokens; only a one-token answer has none."
    if _close(tpot, expected):
        return None
    after_first = record.e2e_s - record.ttft_s
    chunks = len(record.chunk_times_s)
    formula = "TPOT = (e2e_s - ttft_s) / (output_tokens - 1)"
    if _close(tpot, after_first / tokens):
        return (
            "tpot_s divides by output_tokens. The first token's time is TTFT, already "
            f"subtracted, so divide by the tokens after the first: {formula}."
        )
    if _close(tpot, record.e2e_s / tokens):
        return (
            "tpot_s spreads the whole E2E over all the tokens, the first included: the wait for "
            f"the first token (TTFT) is not a time per output token. {formula}."
        )
    if _close(tpot, record.e2e_s / (tokens - 1)):
        return f"tpot_s does not subtract TTFT from E2E: {formula}."
    if chunks != tokens and chunks > 1 and _close(tpot, after_first / (chunks - 1)):
        return (
            f"tpot_s counts chunks ({chunks}) instead of tokens ({tokens}): one chunk can "
            "carry several tokens. Divide by output_tokens - 1, the server's count; the mean "
            f"gap between chunks is the inter-token latency, another figure. {formula}."
        )
    return f"tpot_s is {tpot:.6g} s, expected {expected:.6g} s: {formula}."


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
