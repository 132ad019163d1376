"""The decision rule of the regression gate for one benchmark: an estimate, its error, a verdict.

The unit of evidence is the level that varies. Whole processes shift (where their buffers landed,
their threads' placement, a neighbour's spell of load) by more than the samples inside one process
spread, so samples of one process are never treated as independent draws:

- compare (two runs): each run's **rounds** (zhisuan.bench.harness.rounds: a fresh process each); a
  round's median is one unit. Results without rounds (pytest-benchmark files, earlier versions)
  stand in with **blocks** of consecutive samples, which see drift but not the process: said so.
- ab (two versions timed in alternation): per-round paired log-ratios, averaged per **epoch** (a
  pair of fresh worker processes); the epochs are the units.
- history: a baseline of several **runs**; their spread is the noise floor of one more run.

From the units, in log space: d = the estimated log(current / baseline), its variance from the
units' spread (trimmed means and Welch: Yuen's test; shrinks as 1/units), plus a **noise floor** that more units cannot shrink
(run-to-run variation the units cannot see: in compare, each benchmark's change is taken beyond the
shift that the comparison's benchmarks share, the host's, and their spread around it is the floor
(common_shift); in history, the baseline runs' spread), with Satterthwaite's degrees of freedom. Then, with
threshold t and significance alpha (one-sided Student's t tests):

- regressed: ratio > 1 + t AND p(current slower) < alpha, which is the same as: the (1 - 2 alpha)
  interval lies above 1. Both, so that neither a tiny but certain shift nor a large unproven one
  fails a build;
- improved: the mirror image;
- unchanged: neither, and the interval lies inside [1/(1+t), 1+t]: a change as large as t is ruled out;
- undecided: neither, and the interval reaches past a threshold. It says how many units (rounds
  per run, epochs) would likely decide, or that none would, when the noise floor alone is too wide.

Everything is vectorised over leading axes, so the gate's power benchmark and its tests run
thousands of trials through exactly the rule a single comparison uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

DEFAULT_THRESHOLD = 0.05
DEFAULT_ALPHA = 0.01
MAX_BLOCKS = 10  # results without rounds: at most this many blocks of consecutive samples
MIN_BLOCK = 3  # samples per block
MIN_FLOOR_BENCHMARKS = 4  # a floor learned across benchmarks needs this many
FLOOR_QUANTILE = 0.25  # the floor is fitted at the lower quartile: up to 3 in 4 benchmarks may truly differ
CHI2_1_QUANTILE = 0.101531  # that quantile of a chi-square with 1 degree of freedom
SHIFT_GROUP_CHI2 = 2.705543  # the 90% quantile of chi-square(1): how near the candidate shift its group lies
GROUP_CHI2 = 6.634897  # the 99% quantile: the group, again, around the shift and floor it gave
MAX_GROUP_PASSES = 10  # regroupings at most; the group is then taken as it is
MAX_UNITS_SUGGESTED = 1000
TRIM = 0.2  # share of units trimmed from each end (Yuen's trimmed t test; Wilcox recommends 20%)

REGRESSED, IMPROVED, UNCHANGED, UNDECIDED = "regressed", "improved", "unchanged", "undecided"
NOISY = UNDECIDED  # the verdict's earlier name
VERDICTS = (REGRESSED, IMPROVED, UNCHANGED, UNDECIDED)


@dataclass(frozen=True)
class Evidence:
    """What one comparison rests on (scalars, or arrays of a leading shape), in log space."""

    log_ratio: np.ndarray  # estimate of log(current / baseline)
    unit_var: np.ndarray  # its variance from the units' spread
    unit_spread: np.ndarray  # variance per unit: unit_var would be unit_spread / n with n units per side
    dof: np.ndarray  # degrees of freedom of unit_var (0: unknown)
    unit: str  # "round", "block", "epoch", "baseline run"
    n_baseline: int = 0
    n_current: int = 0
    floor_var: float | np.ndarray = 0.0  # variance that more units cannot shrink
    floor_source: str = ""

    @property
    def std_error(self) -> np.ndarray:
        return np.sqrt(self.unit_var + self.floor_var)

    def relative_to(self, shift: CommonShift, source: str) -> Evidence:
        """This benchmark's change beyond the common shift, with the shift's uncertainty and the
        benchmarks' spread around it as its floor."""
        moved = replace(self, log_ratio=np.asarray(self.log_ratio) - shift.log_ratio)
        return moved.with_floor(shift.floor_var + shift.var, source)

    def with_floor(self, floor_var: float, source: str) -> Evidence:
        """The same evidence with a noise floor (never lowers one already there)."""
        if floor_var <= np.max(self.floor_var):
            return self
        return replace(self, floor_var=floor_var, floor_source=source)

    @property
    def total_dof(self) -> np.ndarray:
        """Satterthwaite: a floor counts as known (infinite degrees of freedom)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(self.unit_var > 0, (self.unit_var + self.floor_var) / self.unit_var, 1.0)
        return np.where(self.dof > 0, self.dof * scale**2, 0.0)


@dataclass(frozen=True)
class Assessment:
    ratio: np.ndarray
    ci_low: np.ndarray  # the (1 - 2 alpha) interval of the ratio
    ci_high: np.ndarray
    p_slower: np.ndarray  # one-sided: current slower than baseline
    p_faster: np.ndarray
    verdict: np.ndarray  # of VERDICTS strings
    units_needed: np.ndarray  # undecided: units per side that would likely decide (inf: none would); else 0
    evidence: Evidence


def check_settings(threshold: float, alpha: float) -> None:
    if not (math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be a finite fraction >= 0, got {threshold}")
    if not (0 < alpha < 1):  # also refuses NaN
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")


def _positive_logs(values, what: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if np.any(~np.isfinite(x)) or np.any(x <= 0):
        raise ValueError(f"{what}: timings must be finite and positive")
    return np.log(x)


def _trimmed(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Along the last axis: (the TRIM-trimmed mean, its squared standard error, the units kept).

    Yuen's: the mean of the middle units, with the winsorized variance. A round or an epoch in
    which a neighbour stalled one process is a gross outlier on a shared host (measured: log-ratios
    of -1.5 and -2.6 among rounds of +-0.2); trimming keeps it from deciding, or hiding, a change.
    With fewer than 1/TRIM units nothing is trimmed: the plain mean and variance.
    """
    n = x.shape[-1]
    k = int(TRIM * n)
    ordered = np.sort(x, axis=-1)
    kept = n - 2 * k
    center = ordered[..., k : n - k].mean(axis=-1)
    winsorized = np.clip(ordered, ordered[..., k : k + 1], ordered[..., n - k - 1 : n - k])
    var = winsorized.var(axis=-1, ddof=1) * (n - 1) / (kept * (kept - 1))
    return center, var, kept


def from_units(baseline, current) -> Evidence:
    """Two independent runs, each a set of units (round medians, seconds) along the last axis.

    Trimmed means (_trimmed) and Welch's degrees of freedom over the units kept (Yuen's test). A
    side with a single unit borrows the other side's spread (its own cannot be seen); with a single
    unit on both sides the variance is unknown (infinite).
    """
    lb, lc = _positive_logs(baseline, "baseline"), _positive_logs(current, "current")
    nb, nc = lb.shape[-1], lc.shape[-1]
    if nb < 1 or nc < 1:
        raise ValueError("from_units: each side needs at least one unit")
    if nb == 1 and nc == 1:
        d = lc[..., 0] - lb[..., 0]
        inf = np.full(np.shape(d), np.inf)
        return Evidence(d, inf, inf, np.zeros(np.shape(d)), "round", nb, nc)
    if nb == 1 or nc == 1:  # one estimate of the spread serves both sides
        many, n_many = (lc, nc) if nb == 1 else (lb, nb)
        center, var, kept = _trimmed(many)
        single = (lb if nb == 1 else lc)[..., 0]
        d = center - single if nb == 1 else single - center
        unit_var = var * (1 + n_many)  # the single unit varies as n_many units' mean does, times n_many
        return Evidence(d, unit_var, 2 * var * n_many, np.full(np.shape(d), kept - 1.0), "round", nb, nc)
    cb, vb, hb = _trimmed(lb)
    cc, vc, hc = _trimmed(lc)
    d = cc - cb
    unit_var = vb + vc
    with np.errstate(divide="ignore", invalid="ignore"):
        dof = unit_var**2 / (vb**2 / (hb - 1) + vc**2 / (hc - 1))
    dof = np.where(np.isfinite(dof), dof, hb + hc - 2.0)  # both spreads zero: identical units
    return Evidence(d, unit_var, vb * nb + vc * nc, dof, "round", nb, nc)


def from_pairs(log_ratios) -> Evidence:
    """Paired units (ab's epochs): each a log(current / baseline), along the last axis; their
    trimmed mean (_trimmed), a one-sample t over the units kept."""
    x = np.asarray(log_ratios, dtype=np.float64)
    n = x.shape[-1]
    if n < 2:
        d = x.mean(axis=-1) if n else np.float64(np.nan)
        inf = np.full(np.shape(d), np.inf)
        return Evidence(d, inf, inf, np.zeros(np.shape(d)), "epoch", n, n)
    d, var, kept = _trimmed(x)
    return Evidence(d, var, var * n, np.full(np.shape(d), kept - 1.0), "epoch", n, n)


def from_epochs(rounds_by_epoch: list[list[float]]) -> Evidence:
    """ab's epochs: each a list of its rounds' paired log-ratios; each epoch's unit is its rounds'
    median (one stalled round does not count), judged as from_pairs judges them, but with an error
    no smaller than the rounds allow.

    Why the bound: with few epochs, the trimmed spread of the units can collapse when the middle
    ones happen to agree (measured, an A/A run on this host: five epochs of -0.33, -0.13, -0.12,
    -0.10, -0.01 gave "improved, -11%" at t = -10, while each epoch's own rounds spread by +-0.3).
    An epoch's median is at best as precise as the mean of its rounds, so the mean over n epochs has
    a variance of at least (within-epoch round variance) / (rounds x n). The within-epoch spread is
    taken robustly, from the median absolute difference of rounds of the same epoch: a stalled round
    widens no bound.
    """
    epochs = [rounds for rounds in rounds_by_epoch if len(rounds)]
    evidence = from_pairs([float(np.median(rounds)) for rounds in epochs])
    differences = [abs(a - b) for rounds in epochs for i, a in enumerate(rounds) for b in rounds[i + 1 :]]
    if len(epochs) < 2 or not differences:
        return evidence
    # |a - b| of two normal draws of deviation s has median 0.6745 * sqrt(2) * s
    within_var = (float(np.median(differences)) / (0.6745 * math.sqrt(2))) ** 2
    bound = within_var / (np.mean([len(rounds) for rounds in epochs]) * len(epochs))
    if bound <= evidence.unit_var:
        return evidence
    return replace(evidence, unit_var=np.float64(bound), unit_spread=np.float64(bound * len(epochs)))


def from_runs(baseline_runs: list, current) -> Evidence:
    """A baseline of several runs (each a list of units), against one current run (its units).

    The current run is one more draw from the runs' distribution, so the baseline runs' spread is
    its noise floor: var = v/N (the baseline's mean) + v (the one current run), N-1 degrees of
    freedom. With fewer than two baseline runs: from_units on the one there is.
    """
    centers = np.array([_positive_logs(run, "baseline").mean() for run in baseline_runs])
    if len(centers) < 2:
        return from_units(baseline_runs[0], current)
    n = len(centers)
    v = float(centers.var(ddof=1))
    d = float(_positive_logs(current, "current").mean() - centers.mean())
    return Evidence(np.float64(d), np.float64(v / n), np.float64(v), np.float64(n - 1.0), "baseline run", n, 1,
                    floor_var=v, floor_source=f"the spread of {n} baseline runs")  # fmt: skip


@dataclass(frozen=True)
class CommonShift:
    """How every benchmark of one comparison moved together, taken as the host's (log space)."""

    log_ratio: float  # the shift
    var: float  # its variance
    floor_var: float  # what the benchmarks' changes spread around it beyond their units' spread
    members: int  # benchmarks in the group that fixes it


def common_shift(evidence: list[Evidence]) -> CommonShift | None:
    """The shift that two runs' benchmarks share, and their spread around it (None with fewer than
    MIN_FLOOR_BENCHMARKS to learn from).

    Two runs on one host share its state: a busy spell or a clock change during one run moves every
    benchmark (a common shift; seen up to 20% between runs minutes apart on this 2-core host), and
    each benchmark's own run-level luck moves it further. Each benchmark is judged against the
    shift, so that a host that moved does not hide a benchmark that moved beyond it, and with the
    spread as a floor.

    Which benchmarks moved with the host: for a candidate shift s (one of the d_k), a rough spread
    f(s) solves quantile_q((d_k - s)^2 / (var_k + f)) = that quantile of a chi-square with one
    degree of freedom, at q = FLOOR_QUANTILE, so that benchmarks that truly changed (up to 3 in 4)
    do not count. The candidate is the one with the smallest s^2 + f(s): the tightest group of
    benchmarks that moved alike, nearest to no change, so that a group that truly regressed is not
    taken for the host. The group is the benchmarks within the 90% band of chi-square(1) around it.

    The shift and the floor come from the group alone, as a random-effects mean (DerSimonian and
    Laird): the floor is the spread of the members' changes beyond their units' spread (Cochran's Q
    in excess of its degrees of freedom), the shift their mean weighted by 1 / (var_k + floor), and
    its variance goes into each judgement. Not the quartile spread f: fitted to a lower quartile of
    six benchmarks, it swung from 0 to +-19% between pairs of runs whose unchanged benchmarks agreed
    within their rounds, and a floor that wide hid a 30% slowdown in 3 of 7 real trials.
    A change that moves every benchmark alike cannot be told from the host's: the report says so.
    """
    usable = [(float(e.log_ratio), float(e.unit_var)) for e in evidence if np.isfinite(e.unit_var)]
    if len(usable) < MIN_FLOOR_BENCHMARKS:
        return None
    d = np.array([d for d, _ in usable])
    var = np.array([v for _, v in usable])
    candidate = min(np.unique(d), key=lambda s: s * s + _own_floor((d - s) ** 2, var))
    group = (d - candidate) ** 2 <= SHIFT_GROUP_CHI2 * (var + _own_floor((d - candidate) ** 2, var))
    for _ in range(MAX_GROUP_PASSES):
        shift, shift_var, floor = _random_effects(d[group], var[group])
        wider = (d - shift) ** 2 <= GROUP_CHI2 * (var + floor)
        if np.array_equal(wider, group) or wider.sum() < 2:
            break
        group = wider
    return CommonShift(shift, shift_var, floor, int(group.sum()))


def _random_effects(d: np.ndarray, var: np.ndarray) -> tuple[float, float, float]:
    """(mean, its variance, the spread between members) of estimates d with variances var:
    DerSimonian and Laird's method-of-moments estimate of the spread."""
    if np.any(var <= 0):  # exact ties with no spread at all: the plain mean, known exactly
        return float(d.mean()), 0.0, 0.0
    w = 1.0 / var
    fixed = float((w * d).sum() / w.sum())
    q = float((w * (d - fixed) ** 2).sum())
    scale = float(w.sum() - (w * w).sum() / w.sum())
    spread = max(0.0, (q - (len(d) - 1)) / scale) if scale > 0 else 0.0
    weights = 1.0 / (var + spread)
    return float((weights * d).sum() / weights.sum()), float(1.0 / weights.sum()), spread


def _own_floor(r2: np.ndarray, var: np.ndarray) -> float:
    """The f >= 0 at which the FLOOR_QUANTILE of r2 / (var + f) is that of a chi-square(1)."""

    def excess(f: float) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = np.where(var + f > 0, r2 / (var + f), np.where(r2 > 0, np.inf, 0.0))
        return float(np.quantile(scaled, FLOOR_QUANTILE)) - CHI2_1_QUANTILE

    if excess(0.0) <= 0:
        return 0.0
    low, high = 0.0, float(r2.max()) / CHI2_1_QUANTILE + 1e-12
    for _ in range(60):  # bisection: excess falls as f grows
        middle = (low + high) / 2
        low, high = (middle, high) if excess(middle) > 0 else (low, middle)
    return high


def judge(
    evidence: Evidence, *, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA
) -> Assessment:
    """The verdict from the evidence (see the module's docstring)."""
    from scipy import stats  # here, not at the top: importing scipy.stats costs every command ~1 s

    check_settings(threshold, alpha)
    d = np.asarray(evidence.log_ratio, dtype=np.float64)
    se = np.asarray(evidence.std_error, dtype=np.float64)
    dof = np.asarray(evidence.total_dof, dtype=np.float64)
    known = (dof > 0) & np.isfinite(se)
    safe_dof = np.where(known, dof, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(known & (se > 0), d / se, np.where(known, np.sign(d) * np.inf, 0.0))
    p_slower = np.where(known, stats.t.sf(z, safe_dof), 0.5)
    p_faster = np.where(known, stats.t.cdf(z, safe_dof), 0.5)
    q = np.where(known, stats.t.ppf(1 - alpha, safe_dof), np.inf)
    with np.errstate(invalid="ignore", over="ignore"):
        ci_low = np.where(known, np.exp(d - q * se), 0.0)
        ci_high = np.where(known, np.exp(d + q * se), np.inf)
    ratio = np.exp(d)
    upper, lower = 1.0 + threshold, 1.0 / (1.0 + threshold)
    regressed = (ratio > upper) & (p_slower < alpha)
    improved = (ratio < lower) & (p_faster < alpha)
    settled = (ci_low >= lower) & (ci_high <= upper)
    verdict = np.select([regressed, improved, settled], [REGRESSED, IMPROVED, UNCHANGED], UNDECIDED)
    needed = _units_needed(evidence, d, q, threshold)
    needed = np.where(verdict == UNDECIDED, needed, 0)
    return Assessment(ratio, ci_low, ci_high, p_slower, p_faster, verdict, needed, evidence)


def _units_needed(evidence: Evidence, d, q, threshold: float) -> np.ndarray:
    """Units per side at which the interval would likely decide, from the spread observed.

    The units' part of the variance shrinks as unit_spread / n; the floor does not. A ratio beyond
    the threshold is decided once the interval excludes 1 (q * se < |d|); one inside it once the
    interval stays inside (q * se < log(1+t) - |d|). inf: no number of units would, because the
    floor alone is too wide (or the estimate sits on the threshold), or it would take more than
    MAX_UNITS_SUGGESTED. An estimate from the observed spread, not a promise.
    """
    bound = math.log1p(threshold)
    distance = np.where(np.abs(d) > bound, np.abs(d), bound - np.abs(d))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        room = (distance / q) ** 2 - evidence.floor_var
        n = np.ceil(evidence.unit_spread / room)
    n = np.where((room > 0) & np.isfinite(n), n, np.inf)
    now = max(evidence.n_baseline, evidence.n_current)
    n = np.maximum(n, now + 1)
    return np.where(n > MAX_UNITS_SUGGESTED, np.inf, n)


def assess(baseline, current, *, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA,
           floor_var: float = 0.0) -> Assessment:  # fmt: skip
    """Two runs' units (round medians) along the last axis: from_units, a floor, judge."""
    check_settings(threshold, alpha)
    evidence = from_units(baseline, current)
    if floor_var:
        evidence = evidence.with_floor(floor_var, "given")
    return judge(evidence, threshold=threshold, alpha=alpha)


# ---- units of a Result ---------------------------------------------------------------------------


def units_of(result) -> tuple[list[float], str]:
    """A result's units and their kind: its round medians, or blocks of consecutive samples."""
    from zhisuan.bench.core.precision import round_medians, rounds_of

    rounds = rounds_of(result)
    if rounds:
        return rounds, "round"
    samples = list(result.samples_s)
    blocks = max(1, min(MAX_BLOCKS, len(samples) // MIN_BLOCK))
    edges = np.linspace(0, len(samples), blocks + 1).round().astype(int)
    return round_medians(samples, list(np.diff(edges))), "block"


def evidence_for(baseline, current) -> Evidence:
    """One benchmark's evidence from two Results (no floor yet: comparison adds the learned one)."""
    (b, kind_b), (c, kind_c) = units_of(baseline), units_of(current)
    unit = "round" if kind_b == kind_c == "round" else "block"
    return replace(from_units(b, c), unit=unit)


def assess_results(baseline, current, *, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA,
                   floor_var: float = 0.0) -> Assessment:  # fmt: skip
    """Judge one benchmark of two Results (their rounds, or blocks of their samples)."""
    evidence = evidence_for(baseline, current)
    if floor_var:
        evidence = evidence.with_floor(floor_var, "given")
    return judge(evidence, threshold=threshold, alpha=alpha)


def assess_runs(baseline_runs: list, current, *, threshold: float = DEFAULT_THRESHOLD,
                alpha: float = DEFAULT_ALPHA) -> Assessment:  # fmt: skip
    """Judge one benchmark of a current Result against several baseline Results (history's runs):
    their spread is the noise floor (from_runs)."""
    units = [units_of(r)[0] for r in baseline_runs]
    return judge(from_runs(units, units_of(current)[0]), threshold=threshold, alpha=alpha)
