"""The gate's decision rule on synthetic timings: power, false positives, the threshold, noisy cases.

500 trials per case, vectorised through zhisuan.bench.gate.decision.assess (the very rule a single comparison
uses); the bootstrap is cut to 999 resamples here, which only touches the unchanged/noisy split
(regressed/improved need no bootstrap). docs/benchmarks/gate.md has the full-size numbers.
"""

import numpy as np
import pytest

from zhisuan.bench.gate import decision

TRIALS = 500
SAMPLES = 30  # per run: what `zhisuan run --iters 30` gives
NOISE = 0.02


def trials(slowdown: float, seed: int, n: int = SAMPLES, noise: float = NOISE, count: int = TRIALS):
    rng = np.random.default_rng(seed)
    baseline = 1e-3 * (1 + noise * rng.standard_normal((count, n)))
    current = slowdown * 1e-3 * (1 + noise * rng.standard_normal((count, n)))
    return decision.assess(baseline, current, n_resamples=999, seed=seed)


def rate(assessment, verdict: str) -> float:
    return float(np.mean(assessment.verdict == verdict))


def test_ten_percent_slowdown_is_flagged_in_99_percent_of_trials():
    assert rate(trials(1.10, seed=1), decision.REGRESSED) >= 0.99


def test_identical_distributions_are_flagged_in_at_most_1_percent_of_trials():
    a = trials(1.0, seed=2)
    assert rate(a, decision.REGRESSED) <= 0.01
    assert rate(a, decision.IMPROVED) <= 0.01
    assert rate(a, decision.UNCHANGED) >= 0.95  # and the gate can say so, not just "noisy"


def test_three_percent_slowdown_is_below_the_default_five_percent_threshold():
    a = trials(1.03, seed=3)
    assert rate(a, decision.REGRESSED) <= 0.01
    # It is a real, detectable shift: significant, yet not a regression by the threshold.
    assert np.mean(a.p_slower < decision.DEFAULT_ALPHA) >= 0.95


def test_ten_percent_speedup_is_improved_not_regressed():
    a = trials(1 / 1.10, seed=4)
    assert rate(a, decision.IMPROVED) >= 0.99 and rate(a, decision.REGRESSED) == 0


def test_threshold_and_alpha_both_required():
    rng = np.random.default_rng(5)
    base = 1e-3 * (1 + 0.02 * rng.standard_normal(40))
    slow = 1.10 * 1e-3 * (1 + 0.02 * rng.standard_normal(40))
    assert decision.assess(base, slow).verdict == decision.REGRESSED
    assert decision.assess(base, slow, threshold=0.20).verdict != decision.REGRESSED  # ratio under threshold
    # Beyond the threshold but with 3 samples a side the rank test cannot reach alpha = 0.01.
    few = decision.assess(base[:3], slow[:3] * 1.2)
    assert few.ratio > 1.05 and few.verdict == decision.NOISY


def test_noisy_verdict_estimates_samples_that_then_decide():
    """10% noise, 8% slowdown, 6 samples: noisy; at the suggested count most trials decide."""
    small = trials(1.08, seed=6, n=6, noise=0.10, count=200)
    noisy = small.verdict == decision.NOISY
    assert noisy.mean() > 0.5
    suggested = small.samples_needed[noisy]
    assert np.all(suggested > 6) and np.all(small.samples_needed[~noisy] == 0)
    n = int(np.median(suggested[np.isfinite(suggested)]))
    large = trials(1.08, seed=7, n=n, noise=0.10, count=200)
    assert rate(large, decision.NOISY) < 0.5, f"suggested {n} samples, still noisy"


def test_exact_ties_and_constant_samples():
    same = decision.assess([1e-3] * 10, [1e-3] * 10)
    assert same.ratio == 1 and same.verdict == decision.UNCHANGED
    slower = decision.assess([1e-3] * 10, [2e-3] * 10)
    assert slower.verdict == decision.REGRESSED


def test_min_samples_for_alpha():
    # 1 / C(2n, n) is the smallest one-sided exact p: 1/252 at n = 5, 1/70 at n = 4.
    assert decision.min_samples_for(0.01) == 5
    assert decision.min_samples_for(0.05) == 4


@pytest.mark.parametrize(
    "baseline,current,kwargs,message",
    [
        ([1.0], [1.0, 2.0], {}, "at least 2 samples"),
        ([1.0, 2.0], [1.0, float("nan")], {}, "finite and positive"),
        ([1.0, 2.0], [1.0, 0.0], {}, "finite and positive"),
        ([1.0, 2.0], [1.0, 2.0], {"alpha": 1.5}, "alpha must be between 0 and 1"),
        ([1.0, 2.0], [1.0, 2.0], {"threshold": -0.1}, "threshold must be >= 0"),
    ],
)
def test_bad_samples_are_refused(baseline, current, kwargs, message):
    with pytest.raises(ValueError, match=message):
        decision.assess(baseline, current, **kwargs)


def test_long_sample_lists_get_fewer_resamples():
    assert decision.resamples_for(30, 30) == decision.DEFAULT_RESAMPLES
    assert decision.resamples_for(100_000, 50) == decision.MIN_RESAMPLES
