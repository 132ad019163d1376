"""Turn timing samples into achieved FLOP/s and bytes/s against the chip's peaks."""

from __future__ import annotations

from zhisuan.bench.core import chips
from zhisuan.bench.core.results import Result
from zhisuan.bench.core.stats import summarize


def fill_timing(result: Result, samples: list[float]) -> None:
    summary = summarize(samples)
    result.samples_s = list(samples)
    result.median_s, result.iqr_s, result.cv = summary.median_s, summary.iqr_s, summary.cv


def fill_rates(result: Result, device: chips.Device, math_dtype: str | None) -> None:
    """Achieved rates from the median, and percentages of the datasheet and measured peaks.

    Interpreted results (Triton interpreter, CUDA simulator) get no rates: their times mean nothing.
    """
    if result.interpreted or not result.median_s:
        return
    if result.flops:
        result.flops_per_s = result.flops / result.median_s
        peak = device.peak(math_dtype) if math_dtype else None
        if peak is not None:
            result.peak_flops = peak.value * 1e12
            result.peak_status = peak.status
            result.pct_peak = 100.0 * result.flops_per_s / result.peak_flops
        measured = chips.measured_peak_flops(device, math_dtype, result.flops_per_s) if math_dtype else None
        if measured:
            result.measured_peak_flops = measured
            result.pct_measured_peak = 100.0 * result.flops_per_s / measured
    if result.bytes:
        result.bytes_per_s = result.bytes / result.median_s
        bandwidth = device.peak_bandwidth()
        if bandwidth is not None:
            result.peak_bandwidth = bandwidth.value * 1e12
            result.pct_peak_bandwidth = 100.0 * result.bytes_per_s / result.peak_bandwidth
