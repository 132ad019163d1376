"""Several runs of the same benchmarks: one representative run each, and their spread as a noise floor.

Whole runs shift against each other (clock, memory placement, a neighbour's spell of load): on the
2-core host five back-to-back processes of the same matmul gave medians 7 % apart while the samples
inside each spread 1-2 % (docs/DESIGN). A test over the samples of one run cannot see that, so
when a baseline is made of several runs (the last N runs of a branch, every run of a commit), the
spread of their medians is what the current run has to leave before a change counts.

- `representatives`: per benchmark, the run whose median is the median of the runs' medians (a
  real run's samples, never pooled ones, so the within-run test sets like against like);
- `floor_verdict`: the noise-floor rule, in one function;
- `apply`: that rule over a gate report, each softened verdict explained in its note.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from zhisuan.bench.core.results import Result
from zhisuan.bench.gate import decision
from zhisuan.bench.gate.comparison import GateReport, Pair


def timed(r: Result) -> bool:
    """A result with a timing the gate can judge: timed (ok or unchecked), real hardware, >= 2 positive samples."""
    return (
        r.timed and not r.interpreted and r.median_s is not None and len(r.samples_s) >= 2
        and min(r.samples_s) > 0
    )  # fmt: skip


def median_run(results: list[Result]) -> Result:
    """Of several results of one benchmark, the one whose median is the (lower) median of them all."""
    ordered = sorted(results, key=lambda r: r.median_s)
    return ordered[(len(ordered) - 1) // 2]


def representatives(results: list[Result], *, current: bool) -> list[Result]:
    """One result per benchmark (Result.key) out of several runs, in first-seen order: the median
    run of its timed results.

    current side: a benchmark that failed in any run is represented by that failure, so a crash in
    one of several runs is never outvoted by the others. Baseline side: failed runs are left out,
    and a benchmark that only failed has no baseline (the gate lists it as new), so a benchmark
    broken on main does not block the change that mends it. A benchmark that ran but has no
    timing (interpreted, fewer than 2 samples) is represented by its latest result, so the gate
    says why it is not compared.
    """
    by_key: dict[tuple, list[Result]] = {}
    for r in results:
        by_key.setdefault(r.key(), []).append(r)
    chosen = []
    for members in by_key.values():
        ran = [r for r in members if r.status == "ok"]
        good = [r for r in ran if timed(r)]
        if current and len(ran) < len(members):
            chosen.append(_latest([r for r in members if r.status != "ok"]))
        elif good:
            chosen.append(median_run(good))
        elif ran:
            chosen.append(_latest(ran))
    return chosen


def _latest(results: list[Result]) -> Result:
    return max(results, key=lambda r: r.timestamp)


def run_medians(results: list[Result]) -> dict[tuple, list[float]]:
    """The median of every timed result, per benchmark (Result.key)."""
    medians: dict[tuple, list[float]] = {}
    for r in results:
        if timed(r):
            medians.setdefault(r.key(), []).append(float(r.median_s))
    return medians


def spread_band(baseline_medians: list[float], threshold: float) -> tuple[float, float]:
    """[fastest run / (1 + t), slowest run x (1 + t)]: where a current median is no news."""
    return min(baseline_medians) / (1.0 + threshold), max(baseline_medians) * (1.0 + threshold)


def floor_verdict(
    verdict: str, current_median: float, baseline_medians: list[float], threshold: float
) -> str:
    """The noise-floor rule: a verdict of the within-run test, checked against run-to-run spread.

    verdict: what the within-run test (decision.assess) said of the current run against the
    representative baseline run. current_median: the current run's median time. baseline_medians:
    the median time of every baseline run of this benchmark. threshold: the benchmark's (0.05 = 5%).

    A "regressed" or "improved" whose current median lies inside the band spanned by the baseline
    runs' medians, widened by the threshold on both sides ([min / (1 + t), max x (1 + t)]), becomes
    "noisy": the baseline's own runs differ that much, so the change is not evidence of the code.
    Every other verdict is returned as it is, and with a single baseline run the band is the
    threshold band around it, which a within-run regression has already left: nothing changes.
    This is the core the gate's over-rounds rule replaces when it lands (docs/ci-gate.md, History).
    """
    if verdict not in (decision.REGRESSED, decision.IMPROVED) or not baseline_medians:
        return verdict
    low, high = spread_band(baseline_medians, threshold)
    return decision.NOISY if low <= current_median <= high else verdict


@dataclass
class SpreadPair(Pair):
    """A pair whose within-run verdict the run-to-run spread softened; its note says so."""

    within_run_verdict: str = ""
    band: tuple[float, float] = (0.0, 0.0)  # relative to the baseline median, e.g. (0.93, 1.09)
    n_runs: int = 0

    @property
    def note(self) -> str:
        low, high = ((b - 1) * 100 for b in self.band)
        return (
            f"within-run test: {self.within_run_verdict}, but inside the spread of {self.n_runs} baseline runs "
            f"({low:+.1f}% .. {high:+.1f}% with the threshold)"
        )


def apply(report: GateReport, baseline_runs: list[Result]) -> list[SpreadPair]:
    """Soften the report's verdicts by the spread of baseline_runs (every run, not representatives).

    Pairs are replaced in place (same fields, a SpreadPair with its note); the report's exit code
    and summary follow. Returns the softened pairs.
    """
    # Looked up by the baseline representative's own key (its chip included), so a comparison across
    # chips (--allow-env-mismatch) finds the runs the representative was chosen from.
    medians = run_medians(baseline_runs)
    softened = []
    for i, pair in enumerate(report.pairs):
        runs = medians.get(pair.baseline.key(), [])
        verdict = floor_verdict(pair.verdict, float(pair.current.median_s), runs, pair.threshold)
        if verdict == pair.verdict:
            continue
        low, high = spread_band(runs, pair.threshold)
        base = float(pair.baseline.median_s)
        values = {f.name: getattr(pair, f.name) for f in fields(Pair)}
        values["verdict"] = verdict
        report.pairs[i] = SpreadPair(
            **values, within_run_verdict=pair.verdict, band=(low / base, high / base), n_runs=len(runs)
        )
        softened.append(report.pairs[i])
    order = {v: i for i, v in enumerate(decision.VERDICTS)}
    report.pairs.sort(key=lambda p: (order[p.verdict], -abs(p.ratio - 1)))
    return softened
