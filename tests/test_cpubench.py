"""The statistics of the committed CPU benchmark (zhisuan.bench.dev.cpubench), on made-up rounds."""

from __future__ import annotations

import pytest

from zhisuan.bench.core.results import Result
from zhisuan.bench.dev.cpubench import best_time, pct_of_best_peak, pct_of_round_peaks


def round_result(samples_s: list[float], flops: float = 2e9) -> Result:
    median = sorted(samples_s)[len(samples_s) // 2]
    return Result(
        kind="kernel", op="matmul", backend="cpp", shape={"M": 1000, "N": 1000, "K": 1000}, dtype="fp32",
        device="cpu", device_name="test cpu", samples_s=samples_s, median_s=median, flops=flops,
        flops_per_s=flops / median,
    )  # fmt: skip


def test_best_time_is_the_fastest_sample_of_any_round():
    runs = [round_result([0.03, 0.02, 0.05]), round_result([0.04, 0.011, 0.07]), round_result([0.02])]
    assert best_time(runs) == 0.011


def test_best_sample_against_the_best_probe_window():
    # 2 GFLOP in 10 ms is 200 GFLOP/s; the best peak of the run is 250 GFLOP/s: 80 %.
    runs = [round_result([0.02, 0.012]), round_result([0.010, 0.03])]
    assert pct_of_best_peak(runs, [240e9, 250e9]) == pytest.approx(80.0)


def test_paired_peak_is_the_median_over_rounds_of_rate_over_that_rounds_peak():
    # Rates 200, 100, 160 GFLOP/s against peaks 250, 200, 320: 80 %, 50 %, 50 % -> median 50 %.
    runs = [round_result([0.01]), round_result([0.02]), round_result([0.0125])]
    assert pct_of_round_peaks(runs, [250e9, 200e9, 320e9]) == pytest.approx(50.0)


def test_without_a_probe_there_is_no_percentage():
    runs = [round_result([0.01])]
    assert pct_of_best_peak(runs, []) is None
    assert pct_of_round_peaks(runs, []) is None
