"""The regression gate: match two sets of results, check they are comparable, judge each pair.

Exit codes, one meaning each:
  0  no regression;
  1  at least one benchmark regressed;
  2  cannot compare: a current result failed (crashed, failed its correctness check, wrote into
     its inputs, or reached a rate the chip cannot give: "suspect"), a baseline result has no timing, benchmarks of the baseline are missing from the current run,
     the environments differ in what matters, or nothing was left to compare.
A failed run is never reported as a regression, nor as a pass: 2 wins over 1. A result timed
without a check ("unchecked": bench.measure or the pytest fixture without a reference) is
compared, its time being what the gate judges, and its verdict says it was unchecked.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from zhisuan.bench.core.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from zhisuan.bench.core.precision import sampling_of
from zhisuan.bench.core.results import Result, shape_label
from zhisuan.bench.gate import decision
from zhisuan.bench.gate.envdiff import EnvDiff, compare_environments
from zhisuan.bench.gate.settings import GateSettings


@dataclass
class Pair:
    baseline: Result
    current: Result
    threshold: float
    alpha: float
    ratio: float
    ci_low: float  # the (1 - 2 alpha) interval of the ratio
    ci_high: float
    p_slower: float
    p_faster: float
    verdict: str
    units_needed: float  # undecided: units per side that would likely decide (inf: none would); else 0
    evidence: decision.Evidence

    @classmethod
    def judged(cls, baseline: Result, current: Result, threshold: float, alpha: float,
               a: decision.Assessment) -> Pair:  # fmt: skip
        return cls(baseline, current, threshold, alpha, float(a.ratio), float(a.ci_low), float(a.ci_high),
                   float(a.p_slower), float(a.p_faster), str(a.verdict), float(a.units_needed), a.evidence)  # fmt: skip

    @property
    def units(self) -> str:
        e = self.evidence
        return f"{e.n_baseline}/{e.n_current} {e.unit}s"

    @property
    def note(self) -> str:
        """Why an undecided benchmark is undecided, and what would decide it; caveats of the others."""
        notes = []
        if self.verdict == decision.UNDECIDED:
            notes.append(_why_undecided(self))
        if "unchecked" in (self.baseline.status, self.current.status):
            notes.append("unchecked: output not verified")
        for side, r in (("baseline", self.baseline), ("current", self.current)):
            sampling = sampling_of(r)
            if sampling.get("stop") in ("max-rounds", "time-budget", "interrupted") and sampling.get(
                "precision"
            ):
                notes.append(
                    f"{side} stopped sampling ({sampling['stop']}) at +-{sampling['precision']:.1%}, "
                    f"short of its +-{sampling.get('target', 0):.1%} target"
                )
        return "; ".join(notes)


BUSY_FRACTION = 0.25  # other processes' CPU use, of the host's CPUs, beyond which a round ran on a busy host
BUSY_FLOOR = 0.10  # relative sd between two runs on a busy host (docs/benchmarks/gate.md: real A/A runs)
# The hypervisor's steal share of CPU time, median round against median round, that two runs may differ by
# before the pair counts as timed on a busy host. On this 2-core host, in 183 runs the median round's
# steal was 0 to 3.3%; a run at 4.4% made the only A/A false alarm that steal explains (gate.md).
STEAL_GAP = 0.03


def _host_readings(r: Result, key: str) -> list[dict]:
    """The readings of the host that r's rounds took (zhisuan run records one per round) that have `key`."""
    return [h for h in sampling_of(r).get("host") or [] if isinstance(h, dict) and h.get(key) is not None]


def busy_host(results: list[Result]) -> str | None:
    """Why these results' rounds ran on a busy host, or None: in the median round, other processes
    used more than BUSY_FRACTION of the CPUs (CPU benchmarks; the rounds' own readings)."""
    readings = [
        h for r in results if r.device == "cpu" for h in _host_readings(r, "others_cores") if h.get("cpus")
    ]
    if not readings:
        return None
    others = statistics.median(h["others_cores"] for h in readings)
    cpus = readings[0]["cpus"]
    if others <= BUSY_FRACTION * cpus:
        return None
    return f"other processes used {others:.1f} of {cpus} CPUs in its median round (a busy host)"


def steal_share(r: Result) -> float | None:
    """The hypervisor's share of the CPU time in r's median round (None: not read)."""
    steals = [h["steal_fraction"] for h in _host_readings(r, "steal_fraction")]
    return statistics.median(steals) if steals else None


def _why_undecided(p: Pair) -> str:
    e = p.evidence
    if not math.isfinite(float(e.unit_var)):
        return (
            f"cannot decide: one {e.unit} in each run says nothing about how the next would land "
            "(zhisuan run takes several rounds by default)"
        )
    if p.units_needed == float("inf"):
        if e.floor_var > 0:
            floor = math.expm1(math.sqrt(float(e.floor_var)))
            return (
                f"cannot decide: the run-to-run noise alone (+-{floor:.1%} between the runs, {e.floor_source}) is too "
                "wide for this threshold; more rounds will not narrow it: rerun both on a quiet host, or "
                "time both versions in one job (zhisuan ab)"
            )
        return f"cannot decide: too close to the threshold to decide with {p.units}, or far more"
    floor = (
        f", with the run-to-run noise floor of +-{math.expm1(math.sqrt(float(e.floor_var))):.1%} ({e.floor_source})"
        if e.floor_var > 0
        else ""
    )
    return f"cannot decide yet: ~{int(p.units_needed)} {e.unit}s per run would likely decide (now {p.units}){floor}"


@dataclass
class Unmatched:
    baseline: Result | None
    current: Result | None
    reason: str


@dataclass
class GateReport:
    settings: GateSettings
    pairs: list[Pair] = field(default_factory=list)
    new: list[Result] = field(default_factory=list)
    missing: list[Result] = field(default_factory=list)
    unmatched: list[Unmatched] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # why the comparison cannot be trusted
    env: EnvDiff = field(default_factory=EnvDiff)
    allow_env_mismatch: bool = False
    allow_missing: bool = False
    duplicates_dropped: int = 0
    shift: decision.CommonShift | None = None  # how every benchmark moved together (None: too few to tell)

    def by_verdict(self, verdict: str) -> list[Pair]:
        return [p for p in self.pairs if p.verdict == verdict]

    @property
    def problems(self) -> list[str]:
        """Every reason this comparison cannot pass or fail (exit 2)."""
        problems = list(self.failures)
        if self.env.blocks and not self.allow_env_mismatch:
            problems.append(
                "environments differ (pass --allow-env-mismatch to compare anyway): "
                + "; ".join(self.env.describe())
            )
        # On another chip every benchmark is "missing": the device message already says why.
        other_device = self.env.device and not self.allow_env_mismatch
        if self.missing and not self.allow_missing and not other_device:
            names = ", ".join(describe(r) for r in self.missing[:5])
            more = f" and {len(self.missing) - 5} more" if len(self.missing) > 5 else ""
            problems.append(
                f"{len(self.missing)} baseline benchmark(s) missing from the current run ({names}{more}); "
                "a crashed or interrupted run? (--allow-missing if they were removed on purpose)"
            )
        if not self.pairs and not problems:
            problems.append("nothing to compare: no benchmark has a timing in both runs")
        return problems

    @property
    def exit_code(self) -> int:
        if self.problems:
            return EXIT_USAGE
        return EXIT_FAILED if self.by_verdict(decision.REGRESSED) else EXIT_OK


def describe(r: Result) -> str:
    return " ".join(part for part in (r.op, r.backend, shape_label(r.shape), r.dtype, r.variant) if part)


def _latest_by_key(results: list[Result], ignore_device: bool) -> tuple[dict, int]:
    """One result per benchmark: the latest, when a directory holds several runs of it."""
    chosen: dict[tuple, Result] = {}
    for r in sorted(results, key=lambda r: r.timestamp):
        chosen[r.key()[:-1] if ignore_device else r.key()] = r
    return chosen, len(results) - len(chosen)


def _why_not_timed(r: Result, side: str) -> str | None:
    if r.interpreted:
        return f"{side} was produced by an interpreter/simulator: its times mean nothing"
    if len(r.samples_s) < 2:
        hint = " (pytest-benchmark keeps them with --benchmark-json or --benchmark-save-data)"
        return f"{side} has {len(r.samples_s)} timing sample(s); at least 2 are needed" + (
            hint if r.kind == "pytest-benchmark" else ""
        )
    if min(r.samples_s) <= 0:
        return f"{side} has a timing sample of zero: the timer could not resolve the call"
    return None


def busy_floor(b: Result, c: Result) -> tuple[float, str]:
    """The noise floor of a pair timed on a busy host (0 when neither run was): a neighbour's load
    moves a run's times by more than its rounds show, because it persists across them. Not a
    veto: a change far beyond BUSY_FLOOR still fails the build, one near the threshold becomes
    undecided and says why."""
    for side, r in (("baseline", b), ("current", c)):
        busy = busy_host([r])
        if busy:
            return math.log1p(BUSY_FLOOR) ** 2, f"during the {side} run {busy}"
    # A steal the two runs share moves them alike; one that only one run met stretches its
    # benchmarks unevenly (gate.md: 11% on one, 20-25% on the rest), which the common shift cannot take out.
    steal_b, steal_c = steal_share(b), steal_share(c)
    if steal_b is not None and steal_c is not None and abs(steal_b - steal_c) > STEAL_GAP:
        return math.log1p(BUSY_FLOOR) ** 2, (
            f"the hypervisor took {steal_b:.1%} of the CPU time in the baseline's median round and "
            f"{steal_c:.1%} in the current's (a busy host: they may differ by {STEAL_GAP:.0%})"
        )
    return 0.0, ""


def run_gate(
    baseline: list[Result],
    current: list[Result],
    settings: GateSettings | None = None,
    *,
    allow_env_mismatch: bool = False,
    allow_missing: bool = False,
) -> GateReport:
    settings = settings or GateSettings()
    report = GateReport(settings, allow_env_mismatch=allow_env_mismatch, allow_missing=allow_missing)
    devices_differ = {r.device_name for r in baseline} != {r.device_name for r in current}
    # Different chips never match by key; when the user accepts the mismatch, match without the chip.
    ignore_device = devices_differ and allow_env_mismatch
    base, dropped_b = _latest_by_key(baseline, ignore_device)
    cur, dropped_c = _latest_by_key(current, ignore_device)
    report.duplicates_dropped = dropped_b + dropped_c

    for r in cur.values():
        if not r.timed:
            report.failures.append(
                f"current run failed: {describe(r)} on {r.device_name}: {r.status}: {r.error or 'no reason given'}"
            )
    report.new = [r for k, r in cur.items() if k not in base and r.timed]
    report.missing = [r for k, r in base.items() if k not in cur]
    matched = [(base[k], cur[k]) for k in cur if k in base]
    report.env = compare_environments([b for b, _ in matched] or list(base.values()),
                                      [c for _, c in matched] or list(cur.values()))  # fmt: skip

    judged = []
    for b, c in matched:
        if not c.timed:
            continue  # already a failure
        if not b.timed:
            report.failures.append(
                f"baseline has no timing for {describe(b)}: it {b.status} ({b.error or 'no reason given'}); "
                "record a new baseline"
            )
            continue
        reason = _why_not_timed(b, "baseline") or _why_not_timed(c, "current")
        if reason:
            report.unmatched.append(Unmatched(b, c, reason))
            continue
        judged.append((b, c, decision.evidence_for(b, c)))
    report.shift = decision.common_shift([e for _, _, e in judged])
    source = f"learned across {len(judged)} benchmarks, around the shift they share"
    for b, c, e in judged:
        threshold, alpha = settings.for_result(c)
        busy_var, busy_source = busy_floor(b, c)
        if report.shift is not None:
            e = e.relative_to(report.shift, source)
        e = e.with_floor(busy_var, busy_source)
        a = decision.judge(e, threshold=threshold, alpha=alpha)
        report.pairs.append(Pair.judged(b, c, threshold, alpha, a))
    order = {v: i for i, v in enumerate(decision.VERDICTS)}
    report.pairs.sort(key=lambda p: (order[p.verdict], -abs(p.ratio - 1)))
    return report
