"""The run-to-run spread as a noise floor: the rule, the representative runs, its effect on a gate report."""

import numpy as np
import pytest
from gate_results import failed_result, timed_result

from zhisuan.bench.gate import comparison, formats, run_spread
from zhisuan.bench.gate.decision import IMPROVED, NOISY, REGRESSED, UNCHANGED
from zhisuan.bench.gate.settings import GateSettings


def test_floor_verdict_softens_only_inside_the_widened_spread():
    medians = [1.00, 1.08, 0.96]  # band at 5%: [0.96 / 1.05, 1.08 * 1.05] = [0.914, 1.134]
    assert run_spread.floor_verdict(REGRESSED, 1.10, medians, 0.05) == NOISY
    assert run_spread.floor_verdict(REGRESSED, 1.14, medians, 0.05) == REGRESSED
    assert run_spread.floor_verdict(IMPROVED, 0.92, medians, 0.05) == NOISY
    assert run_spread.floor_verdict(IMPROVED, 0.91, medians, 0.05) == IMPROVED
    for verdict in (UNCHANGED, NOISY):  # never turned into anything, inside or out
        assert run_spread.floor_verdict(verdict, 5.0, medians, 0.05) == verdict
    assert run_spread.floor_verdict(REGRESSED, 1.10, [], 0.05) == REGRESSED  # no runs: no floor


def test_a_single_baseline_run_never_softens_a_within_run_verdict():
    """With one run the band is the threshold band around it, which a verdict has already left."""
    rng = np.random.default_rng()
    for _ in range(200):
        base, threshold = rng.uniform(1e-6, 1.0), rng.uniform(0.001, 0.5)
        slower = base * (1 + threshold) * rng.uniform(1.0001, 3.0)
        faster = base / (1 + threshold) / rng.uniform(1.0001, 3.0)
        assert run_spread.floor_verdict(REGRESSED, slower, [base], threshold) == REGRESSED
        assert run_spread.floor_verdict(IMPROVED, faster, [base], threshold) == IMPROVED


def test_representatives_pick_the_median_run_and_let_failures_win_on_the_current_side():
    runs = [
        timed_result(m, seed=i, run_id=f"r{i}", timestamp=1.7e9 + i) for i, m in enumerate([3e-3, 1e-3, 2e-3])
    ]
    torch_runs = [timed_result(1e-3, seed=9, backend="torch", run_id="r0")]
    crash = failed_result(run_id="r3", timestamp=1.7e9 + 3)
    chosen = run_spread.representatives(runs + torch_runs + [crash], current=False)
    assert [(r.backend, r.run_id) for r in chosen] == [("cpp", "r2"), ("torch", "r0")]  # 2 ms: the median
    current = run_spread.representatives(runs + [crash], current=True)
    assert [r.status for r in current] == ["error"]  # a crash in one of several runs is not outvoted
    assert run_spread.representatives([crash], current=False) == []  # only failed: no baseline
    interpreted = timed_result(run_id="i", interpreted=True)
    assert run_spread.representatives([interpreted, crash], current=False) == [interpreted]  # "not compared"
    assert run_spread.median_run(runs[:2]).run_id == "r1"  # even count: the lower median


def _report(baseline_medians, current_median, *, threshold=0.05):
    baseline_runs = [
        timed_result(m, noise=0.01, seed=i, run_id=f"b{i}", timestamp=1.7e9 + i)
        for i, m in enumerate(baseline_medians)
    ]
    current = timed_result(current_median, noise=0.01, seed=99, run_id="cur", timestamp=1.8e9)
    representatives = run_spread.representatives(baseline_runs, current=False)
    report = comparison.run_gate(representatives, [current], GateSettings(threshold))
    return report, baseline_runs


def test_apply_softens_a_regression_inside_the_spread_of_the_baseline_runs():
    report, runs = _report([1.00e-3, 1.08e-3, 0.96e-3, 1.04e-3, 1.02e-3], 1.10e-3)
    assert report.pairs[0].verdict == REGRESSED and report.exit_code == 1  # the within-run test alone
    softened = run_spread.apply(report, runs)
    pair = report.pairs[0]
    assert softened == [pair] and pair.verdict == NOISY and report.exit_code == 0
    assert pair.within_run_verdict == REGRESSED and pair.n_runs == 5
    low, high = pair.band  # relative to the median run (1.02 ms)
    assert low == pytest.approx(0.96 / 1.05 / 1.02, rel=0.02) and high == pytest.approx(
        1.08 * 1.05 / 1.02, rel=0.02
    )
    assert "within-run test: regressed" in pair.note and "spread of 5 baseline runs" in pair.note
    # The gate's own outputs carry the note, unchanged formats.
    assert "spread of 5 baseline runs" in formats.markdown(report)
    assert "spread of 5 baseline runs" in formats.junit(report) and "<failure" not in formats.junit(report)


def test_apply_keeps_a_regression_beyond_the_spread():
    report, runs = _report([1.00e-3, 1.01e-3, 0.99e-3], 1.25e-3)
    assert run_spread.apply(report, runs) == []
    assert report.pairs[0].verdict == REGRESSED and report.exit_code == 1
