"""The decision rule of the regression gate for one benchmark: ratio of medians, its confidence interval, a verdict.

For one benchmark, timed twice (baseline samples b, current samples c; lower is better):

- ratio = median(c) / median(b); > 1 means the current run is slower.
- confidence interval of the ratio: scipy.stats.bootstrap (percentile method, confidence 1 - alpha)
  over both sample sets, resampled independently.
- significance: scipy.stats.mannwhitneyu, one-sided (current slower / current faster). It needs no
  assumption about the shape of the timing distribution, which is skewed and has outliers.

Verdicts, with t the threshold (0.05 = 5%):
- regressed: ratio > 1 + t  AND  p(current slower) < alpha. Both, so that neither a tiny but
  significant shift nor a large but noisy one fails a build.
- improved: ratio < 1 / (1 + t)  AND  p(current faster) < alpha.
- unchanged: neither, and the confidence interval lies inside [1 / (1 + t), 1 + t]: the data rule
  out a change as large as the threshold.
- noisy: neither, and the interval reaches past a threshold: the spread is too wide to tell. The
  verdict comes with an estimate of how many samples per run would decide, from the observed
  spread (the interval narrows as 1/sqrt(n)).

Everything is vectorised over leading axes, so the gate's own power benchmark and its tests run
thousands of trials through exactly the same rule as a single comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_THRESHOLD = 0.05
DEFAULT_ALPHA = 0.01
DEFAULT_RESAMPLES = 9999
# Bound on the bootstrap's work (resamples x samples per side): long sample lists get fewer
# resamples rather than minutes of CPU and gigabytes of memory. 999 is still a usable percentile CI.
RESAMPLE_BUDGET = 20_000_000
MIN_RESAMPLES = 999
MAX_SUGGESTED_FACTOR = 100  # beyond 100x the current samples the estimate says "more than"
DEFAULT_SEED = 0  # a fixed seed: the same inputs always give the same verdict

REGRESSED, IMPROVED, UNCHANGED, NOISY = "regressed", "improved", "unchanged", "noisy"
VERDICTS = (REGRESSED, IMPROVED, UNCHANGED, NOISY)


@dataclass(frozen=True)
class Assessment:
    """One comparison (scalars) or many (arrays of the leading shape)."""

    ratio: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p_slower: np.ndarray  # one-sided Mann-Whitney U p-value: current slower than baseline
    p_faster: np.ndarray
    verdict: np.ndarray  # of VERDICTS strings
    samples_needed: np.ndarray  # for noisy verdicts: samples per run that would likely decide; else 0


def _ratio_of_medians(baseline: np.ndarray, current: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(current, axis=axis) / np.median(baseline, axis=axis)


def resamples_for(n_baseline: int, n_current: int, requested: int = DEFAULT_RESAMPLES) -> int:
    """How many bootstrap resamples to draw: `requested`, fewer for very long sample lists."""
    affordable = RESAMPLE_BUDGET // max(n_baseline, n_current, 1)
    return int(max(MIN_RESAMPLES, min(requested, affordable)))


def min_samples_for(alpha: float) -> int:
    """Smallest n (per side) at which a one-sided exact Mann-Whitney test can reach p < alpha.

    The smallest possible p-value is 1 / C(2n, n) (all current samples above all baseline ones).
    """
    n = 1
    while 1.0 / math.comb(2 * n, n) >= alpha:
        n += 1
    return n


def assess(
    baseline,
    current,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int | np.random.Generator | None = DEFAULT_SEED,
) -> Assessment:
    """Compare timing samples along the last axis; leading axes are independent comparisons."""
    b = np.asarray(baseline, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    if b.shape[-1] < 2 or c.shape[-1] < 2:
        raise ValueError(
            f"assess: need at least 2 samples per side, got {b.shape[-1]} baseline and {c.shape[-1]} current"
        )
    if not (0 < alpha < 1):
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    if np.any(~np.isfinite(b)) or np.any(~np.isfinite(c)) or np.any(b <= 0) or np.any(c <= 0):
        raise ValueError("assess: timing samples must be finite and positive")

    from scipy import stats  # here, not at the top: importing scipy.stats costs every command ~1 s

    ratio = _ratio_of_medians(b, c)
    p_slower = stats.mannwhitneyu(c, b, alternative="greater", axis=-1).pvalue
    p_faster = stats.mannwhitneyu(c, b, alternative="less", axis=-1).pvalue
    n_resamples = resamples_for(b.shape[-1], c.shape[-1], n_resamples)
    boot = stats.bootstrap(
        (b, c),
        _ratio_of_medians,
        n_resamples=n_resamples,
        vectorized=True,
        axis=-1,
        method="percentile",
        confidence_level=1 - alpha,
        batch=max(1, RESAMPLE_BUDGET // max(int(np.prod(b.shape)), 1)),
        rng=np.random.default_rng(seed) if not isinstance(seed, np.random.Generator) else seed,
    )
    ci_low, ci_high = boot.confidence_interval.low, boot.confidence_interval.high

    upper, lower = 1.0 + threshold, 1.0 / (1.0 + threshold)
    regressed = (ratio > upper) & (p_slower < alpha)
    improved = (ratio < lower) & (p_faster < alpha)
    settled = (ci_low >= lower) & (ci_high <= upper)
    verdict = np.select([regressed, improved, settled], [REGRESSED, IMPROVED, UNCHANGED], NOISY)
    needed = _samples_needed(ratio, ci_low, ci_high, b.shape[-1], c.shape[-1], threshold, alpha)
    needed = np.where(verdict == NOISY, needed, 0)
    return Assessment(ratio, ci_low, ci_high, p_slower, p_faster, verdict, needed)


def _samples_needed(ratio, ci_low, ci_high, n_b: int, n_c: int, threshold: float, alpha: float):
    """Samples per run (both runs) at which the interval would likely be narrow enough to decide.

    In log space the interval's half-width w shrinks as sqrt(1/n_b + 1/n_c). A ratio beyond the
    threshold is decided (regressed/improved) once the interval excludes 1: w' < |log ratio|; a
    ratio inside it is decided (unchanged) once the interval stays inside: w' < log(1+t) - |log ratio|.
    Solving w * sqrt((2/n) / (1/n_b + 1/n_c)) < distance for n gives the count. An estimate from
    the observed spread, not a promise. inf: more than MAX_SUGGESTED_FACTOR times today's samples.
    """
    log_r = np.abs(np.log(ratio))
    bound = math.log1p(threshold)
    beyond = log_r > bound
    distance = np.where(beyond, log_r, bound - log_r)
    half_width = (np.log(ci_high) - np.log(ci_low)) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.ceil(2 * half_width**2 / (distance**2 * (1 / n_b + 1 / n_c)))
    n = np.where(np.isfinite(n), n, np.inf)
    # Significance also needs enough samples for the rank test to reach alpha at all, and a noisy
    # verdict at today's count cannot be settled by fewer samples than today's.
    floor = max(n_b, n_c) + 1
    n = np.maximum(n, np.where(beyond, max(min_samples_for(alpha), floor), floor))
    return np.where(n > MAX_SUGGESTED_FACTOR * max(n_b, n_c), np.inf, n)
