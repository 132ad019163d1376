"""Turn timing samples into achieved FLOP/s and bytes/s against the chip's peaks."""

from __future__ import annotations

from zhisuan.bench.core import chips
from zhisuan.bench.core.results import Result
from zhisuan.bench.core.stats import summarize


def fill_timing(result: Result, samples: list[float]) -> None:
    summary = summarize(samples)
    result.samples_s = list(samples)
    result.median_s, result.iqr_s, result.cv = summary.median_s, summary.iqr_s, summary.cv


RATE_FIELDS = ("flops_per_s", "bytes_per_s", "peak_flops", "peak_status", "pct_peak", "measured_peak_flops",
               "pct_measured_peak", "peak_bandwidth", "pct_peak_bandwidth")  # fmt: skip


def fill_rates(result: Result, device: chips.Device, math_dtype: str | None) -> None:
    """Achieved rates from the median, and percentages of the datasheet and measured peaks.

    Interpreted results (Triton interpreter, CUDA simulator) get no rates: their times mean nothing.
    A FLOP rate above what the chip can do (chips.flops_ceiling) makes the result "suspect", with
    no rate at all: the work was not done as counted (a cache answered, or the call did nothing).
    """
    if result.interpreted or result.median_s is None:
        return
    if result.flops and (why := implausible(result, device, math_dtype)):
        result.status, result.error = "suspect", why
        return
    if not result.median_s:
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


def implausible(result: Result, device: chips.Device, math_dtype: str | None) -> str | None:
    """Why result's FLOP rate cannot be true on device, or None when it can (or nothing is known)."""
    if result.median_s == 0:
        return f"{result.flops:.3g} FLOP in no measurable time: the call did not do the work it claims"
    achieved = result.flops / result.median_s
    ceiling = chips.flops_ceiling(device, math_dtype, achieved)
    if ceiling is None or achieved <= ceiling[0]:
        return None
    return (
        f"{achieved:.3g} FLOP/s is above what this chip can do ({ceiling[0]:.3g} FLOP/s: {ceiling[1]}): the "
        "work was not done as counted (a cache answered, or the call skipped work); no rate is reported"
    )


def clear_rates(result: Result) -> None:
    """Remove every rate and percentage from result (a status that carries no rate)."""
    for name in RATE_FIELDS:
        setattr(result, name, None)
