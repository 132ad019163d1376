"""The trend of one benchmark over runs: a verdict for each run, as the gate would have given it then.

Each timed run is judged against the runs before it: the last `window` timed runs of the same
benchmark (or a pinned baseline run, when one is given). The within-run test
(zhisuan.bench.gate.decision.assess_results, over rounds) compares the run with the median one of those runs, and the
run-to-run spread of their medians is the noise floor (run_spread.floor_verdict): the same rule as
`zhisuan history compare CURRENT --last N` (with --branch B for a trend of branch B). With window 1 each run is judged against the previous
one alone, with no noise floor. On synthetic series (80 runs, 2 % noise within a run, 3 % from run
to run, a 30 % step up and back down; tests/test_trend_page.py, seeds 0-3) window 1 marks 14 to
24 false steps per series, window 5 both true steps and 1 to 3 false ones.

A step is marked where it happened; the runs after it sit inside the spread of a window that
holds it. A step back within `window` runs of it is softened the same way (noisy, with its note).
"""

from __future__ import annotations

from dataclasses import dataclass

from zhisuan.bench.core.errors import UsageError
from zhisuan.bench.core.results import Result
from zhisuan.bench.gate import decision, run_spread
from zhisuan.bench.gate.settings import GateSettings

DEFAULT_WINDOW = 5


@dataclass(frozen=True)
class Point:
    result: Result
    reference: Result | None  # the run it was judged against (the median run of its window)
    ratio: float | None
    verdict: str | None  # None: not judged (first run, failed run, too few samples)
    n_reference_runs: int = 0
    within_run_verdict: str | None = None  # the test's own verdict, when the spread softened it

    @property
    def commit(self) -> str | None:
        return self.result.env.get("git_sha") or None

    @property
    def note(self) -> str:
        if self.within_run_verdict and self.within_run_verdict != self.verdict:
            return (
                f"{self.within_run_verdict} within the run, inside the spread of {self.n_reference_runs} runs"
            )
        return ""


def judge_point(result: Result, reference_runs: list[Result], settings: GateSettings) -> Point:
    """One run judged against reference_runs (timed results of the same benchmark, >= 1).

    The only place where the trend applies the gate's rule: decision.assess against the median
    reference run, then the run-to-run spread of all reference runs as the noise floor.
    """
    reference = run_spread.median_run(reference_runs)
    threshold, alpha = settings.for_result(result)
    a = decision.assess_results(reference, result, threshold=threshold, alpha=alpha)
    within = str(a.verdict)
    medians = [float(r.median_s) for r in reference_runs]
    verdict = run_spread.floor_verdict(within, float(result.median_s), medians, threshold)
    return Point(result, reference, float(a.ratio), verdict, len(reference_runs), within)


def judge(results: list[Result], settings: GateSettings, baseline: Result | None = None,
          window: int = DEFAULT_WINDOW) -> list[Point]:  # fmt: skip
    """A verdict per result, in the given (run) order: against `baseline`, or the last `window`
    timed results before it."""
    if window < 1:
        raise UsageError(f"the trend window must be at least 1 run, got {window}")
    points: list[Point] = []
    earlier: list[Result] = []
    for r in results:
        reference_runs = [baseline] if baseline is not None else earlier[-window:]
        usable = [x for x in reference_runs if run_spread.timed(x) and x is not r]
        if run_spread.timed(r) and usable:
            points.append(judge_point(r, usable, settings))
        else:
            points.append(Point(r, None, None, None))
        if run_spread.timed(r):
            earlier.append(r)
    return points


def latest_verdict(points: list[Point]) -> str:
    """What the newest run says: its verdict, its failure, or why it was not judged."""
    if not points:
        return "no runs"
    last = points[-1]
    if last.verdict:
        return last.verdict
    if last.result.status != "ok":
        return last.result.status
    return "not judged"
