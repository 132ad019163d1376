"""Before a check FAILs, it measures again and looks at the host: a FAIL is a shortfall that persists
on a quiet host, nothing less.

    first measurement below the warn fraction
      -> the host is busy (zhisuan.bench.validate.hostload)    WARN "inconclusive: host busy (...)"
      -> re-measured, and the shortfall is gone                  WARN "inconclusive: did not persist"
      -> re-measured, still short, on a quiet host               FAIL
      -> cannot be re-measured alone (a collective, a burn-in),
         on a quiet host                                         FAIL, saying it was not re-measured

A node under a neighbour's load therefore does not fail validation (exit 1), while a node whose
hardware falls short, measured twice on a quiet host, does. Both measurements and the host's
readings go into the record (extra["remeasure"]).
"""

from __future__ import annotations

from dataclasses import dataclass

from zhisuan.bench.validate.thresholds import Rule, judge


@dataclass(frozen=True)
class Settled:
    verdict: str
    note: str  # why, in words, for the record's reason ("" when the first verdict stands)


def settle(rule: Rule, first_ratio: float, second_ratio: float | None, busy: list[str],
           not_remeasured: str = "") -> Settled:  # fmt: skip
    """The verdict of a measurement (value / basis) and its re-measure, given the host's busy reasons.

    second_ratio is None when the check could not be re-measured; not_remeasured says why.
    """
    if judge(first_ratio, rule) != "FAIL":
        return Settled(judge(first_ratio, rule), "")
    first = f"{100 * first_ratio:.1f}%"
    measured = first if second_ratio is None else f"{first}, then {100 * second_ratio:.1f}%"
    if busy:
        return Settled("WARN", f"inconclusive: host busy ({'; '.join(busy)}); measured {measured}")
    if second_ratio is None:
        return Settled("FAIL", f"short on a quiet host; not re-measured: {not_remeasured}")
    second = f"{100 * second_ratio:.1f}%"
    if judge(second_ratio, rule) != "FAIL":
        return Settled(
            "WARN", f"inconclusive: the shortfall did not persist (measured {first}, then {second})"
        )
    return Settled("FAIL", f"the shortfall persisted on a quiet host (measured {first}, then {second})")
