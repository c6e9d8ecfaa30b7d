"""Chapter 08's exercise: ``replicas_needed``, how many replicas carry a load within a latency
budget, from one replica's measured levels, checked against the course's planner
(``llmlab.sizing.capacity``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Integral, Real

from llmlab.exercises.common import ExerciseError, call_student, function_name, kind_of, passed
from llmlab.sizing.capacity import (
    CapacityError,
    MeasuredLevel,
    ReplicaShape,
    plan_capacity,
    sustainable_concurrency,
)

ReplicasNeeded = Callable[[Sequence[MeasuredLevel], int, float, float], int]

#: One replica, as chapter 08 measures it: the most tokens/s at 8 in flight, where requests queue.
SMALL_CPU = [
    MeasuredLevel(1, 45.0, 0.034, 0.022),
    MeasuredLevel(2, 52.0, 0.065, 0.040),
    MeasuredLevel(4, 66.0, 0.085, 0.060),
    MeasuredLevel(8, 70.0, 4.5, 0.120),
]
#: A GPU replica: which budget runs out first depends on the budgets.
GPU = [
    MeasuredLevel(8, 900.0, 0.20, 0.030),
    MeasuredLevel(32, 2600.0, 0.45, 0.045),
    MeasuredLevel(64, 3900.0, 0.80, 0.070),
    MeasuredLevel(128, 5200.0, 1.60, 0.110),
]

#: (case, levels, users, ttft_budget_s, tpot_budget_s)
CASES: list[tuple[str, list[MeasuredLevel], int, float, float]] = [
    ("chapter 08's replica, 25 users, first token within 2 s, 100 ms a token",
     SMALL_CPU, 25, 2.0, 0.100),
    ("chapter 08's replica, 12 users (a whole number of replicas)", SMALL_CPU, 12, 2.0, 0.100),
    ("a GPU replica, 300 users, first token within 2 s, 100 ms a token", GPU, 300, 2.0, 0.100),
    ("a GPU replica, 300 users, first token within 0.5 s, 100 ms a token", GPU, 300, 0.5, 0.100),
]  # fmt: skip
#: A budget no level meets: the answer is a faster replica, not a number of replicas.
IMPOSSIBLE = ("a budget no measured level meets (first token within 10 ms)", GPU, 300, 0.01, 0.1)


def check_replicas_needed(replicas_needed: ReplicasNeeded) -> None:
    """Check ``replicas_needed(levels, users, ttft_budget_s, tpot_budget_s) -> int`` against
    ``plan_capacity`` on the levels of a small CPU replica and of a GPU replica, and check that
    it refuses a budget that no measured level meets instead of extrapolating."""
    __tracebackhide__ = True
    name = function_name(replicas_needed)
    for case, levels, users, ttft, tpot in CASES:
        where = f"{name}, on {case}"
        got = call_student(replicas_needed, (list(levels), users, ttft, tpot), where)
        problem = _replicas_problem(got, levels, users, ttft, tpot)
        if problem:
            raise ExerciseError(f"{where}: {problem}")
    _check_refusal(replicas_needed, name)
    passed(f"{name} agrees with the course's planner on {len(CASES)} loads and refuses a budget "
           "no level meets")  # fmt: skip


def expected_replicas(levels: Sequence[MeasuredLevel], users: int, ttft: float, tpot: float) -> int:
    """The planner's answer for a replica whose slots never cap it first."""
    shape = ReplicaShape.of_server(slots=max(level.concurrency for level in levels))
    plan = plan_capacity(users, shape, levels, ttft_budget_s=ttft, tpot_budget_s=tpot)
    return plan.replicas


def _replicas_problem(
    got: object, levels: Sequence[MeasuredLevel], users: int, ttft: float, tpot: float
) -> str | None:
    if isinstance(got, bool) or not isinstance(got, Real):
        return f"it returned {kind_of(got)}; return the number of replicas, an int."
    expected = expected_replicas(levels, users, ttft, tpot)
    level = sustainable_concurrency(levels, ttft_budget_s=ttft, tpot_budget_s=tpot)
    if not isinstance(got, Integral) and not float(got).is_integer():
        return (
            f"it returned {got}, a fraction of a replica. Servers come whole: round up, "
            f"math.ceil(users / per_replica) = {expected}."
        )
    if got == expected:
        return None
    per_replica = level.concurrency
    if users % per_replica == 0 and got == users // per_replica + 1:
        return (
            f"it returned {got}: {users} users at {per_replica} per replica fill {expected} "
            "replicas exactly, and one more was added. Round up only what is left over: "
            "math.ceil(users / per_replica)."
        )
    if got == users // per_replica or got == round(users / per_replica):
        left = users - int(float(got)) * per_replica
        return (
            f"it returned {got}: {users} users / {per_replica} per replica rounded down, which "
            f"leaves {left} of the {users} users without a replica. Round up: "
            f"math.ceil(users / per_replica) = {expected}."
        )
    for wrong, mistake in _mistakes(levels, ttft, tpot):
        if got in (math.ceil(users / wrong.concurrency), users // wrong.concurrency):
            return (
                f"it returned {got}, as if one replica carried {wrong.concurrency} requests: "
                f"{mistake}. The busiest level within both budgets is {per_replica} in flight "
                f"(TTFT p90 {level.ttft_p90_s} s, TPOT {level.tpot_p50_s * 1000:.0f} ms), so "
                f"{expected} replicas."
            )
    return (
        f"it returned {got}, expected {expected}: the busiest level whose ttft_p90_s <= "
        f"{ttft} and tpot_p50_s <= {tpot} is {per_replica} in flight, and "
        f"ceil({users} / {per_replica}) = {expected}."
    )


def _mistakes(
    levels: Sequence[MeasuredLevel], ttft: float, tpot: float
) -> list[tuple[MeasuredLevel, str]]:
    """The levels a usual mistake would pick, each with what the mistake is (the narrower
    mistakes first: a level picked by one budget alone can also be the fastest)."""
    by_ttft = [level for level in levels if level.ttft_p90_s <= ttft]
    by_tpot = [level for level in levels if level.tpot_p50_s <= tpot]
    mistakes = []
    if by_ttft:
        busiest_by_ttft = max(by_ttft, key=lambda level: level.concurrency)
        mistakes.append((busiest_by_ttft, "only the first-token budget was checked; check "
                                          "tpot_p50_s too"))  # fmt: skip
    if by_tpot:
        busiest_by_tpot = max(by_tpot, key=lambda level: level.concurrency)
        mistakes.append((busiest_by_tpot, "only the per-token budget was checked; check "
                                          "ttft_p90_s too"))  # fmt: skip
    fastest = max(levels, key=lambda level: level.output_tokens_per_s)
    busiest = max(levels, key=lambda level: level.concurrency)
    mistakes += [
        (fastest, "that is the level with the most tokens/s, whatever its latency; the budgets "
                  "decide what a replica carries, not its throughput"),
        (busiest, "that is the busiest level measured, whatever its latency; the budgets "
                  "decide what a replica carries"),
    ]  # fmt: skip
    return mistakes


def _check_refusal(replicas_needed: ReplicasNeeded, name: str) -> None:
    __tracebackhide__ = True
    case, levels, users, ttft, tpot = IMPOSSIBLE
    where = f"{name}, on {case}"
    try:
        got = replicas_needed(list(levels), users, ttft, tpot)
    except (ValueError, CapacityError):
        return
    except Exception as error:
        raise ExerciseError(
            f"{where}: your function raised {type(error).__name__}: {error}. When no level "
            "meets the budget, raise a ValueError that says so (more replicas do not make one "
            "replica answer faster)."
        ) from error
    raise ExerciseError(
        f"{where}: it returned {got!r}. No measured level gives a first token within {ttft} s, "
        "and adding replicas does not make one replica answer faster: raise a ValueError that "
        "says a faster replica is needed, instead of returning a number."
    )
