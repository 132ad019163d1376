"""The one check-then-time path: a callable runs once and its output is checked against the
reference; only a callable that passed is timed; the Result gets the check, every sample and the
rates against the chip's peaks.

`zhisuan run` and bench.run (zhisuan.bench.harness.runner) and `zhisuan validate` all come here.
They differ only in what they pass:
  - the Check: the runner accepts at most k x the vendor's error on the same inputs
    (zhisuan.bench.workloads.base.tolerance); validate takes an absolute bound from the arithmetic
    (zhisuan.bench.validate.tolerance), because there the vendor's path is what is under test;
  - the Sampling: the sample budget, the cache flush, and validate's slow-rank test hook (`wrap`).

    check = Check(reference, tolerance=tol, rule="err <= ...")
    if check_then_time(result, fn, check, Sampling(device), math_dtype="fp32"):
        ...  # result.check, samples_s, median_s, flops_per_s, pct_peak ... are filled

Several checked callables can be timed sample by sample in turn (time_together), so that a
neighbour's load falls on all of them alike. Either way every timed result goes through `fill`:
the one place where a timing becomes a Result, whatever mode produced it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from zhisuan.bench.core import chips, metrics, timing
from zhisuan.bench.core.results import Result
from zhisuan.bench.workloads.base import max_abs_error


@dataclass(frozen=True)
class Check:
    """What an output is judged against: error(output, reference) <= tolerance (NaN never passes)."""

    reference: Any  # float64 tensor(s), or what `error` compares with
    tolerance: float
    rule: str  # the rule that gave the tolerance, in words (goes into the record)
    baseline_err: float | None = None  # the vendor's error on the same inputs, where the rule uses it
    reference_kind: str = "float64"
    error: Callable[[Any, Any], float] = max_abs_error
    error_name: str = "max abs error"


@dataclass
class Sampling:
    """How a checked callable is timed: on which device, how many samples, caches flushed or not."""

    device: chips.Device
    plan: timing.TimingPlan = field(default_factory=timing.TimingPlan)
    flush: bool = True  # overwrite 2x the last-level cache / L2 before every sample
    wrap: Callable[[Callable[[], object]], Callable[[], object]] = lambda fn: fn  # what the timer runs

    @property
    def flush_bytes(self) -> int:
        return 2 * self.device.cache_bytes if self.flush else 0

    def samples(self, fn: Callable[[], object]) -> list[float]:
        return timing.measure(
            self.wrap(fn), device=self.device.torch_device, plan=self.plan, flush_bytes=self.flush_bytes
        )

    def samples_together(self, fns: Sequence[Callable[[], object]]) -> list[list[float]]:
        return timing.measure_interleaved(
            [self.wrap(fn) for fn in fns],
            device=self.device.torch_device,
            plan=self.plan,
            flush_bytes=self.flush_bytes,
        )


@dataclass
class Checked:
    """A callable whose output passed its check, waiting to be timed, with what its rates need."""

    result: Result
    fn: Callable[[], object]
    math_dtype: str | None = None  # the arithmetic's dtype: the peak the rates are set against
    describe: Callable[[], dict] | None = None  # facts for result.extra, gathered once, untimed


def judge_output(result: Result, output: Any, against: Check) -> bool:
    """Compare one output with the reference; fill result.check (and the failure's status)."""
    err = against.error(output, against.reference)
    passed = err == err and err <= against.tolerance  # NaN never passes
    result.check = {
        "max_abs_err": err,
        "tolerance": against.tolerance,
        "baseline_err": against.baseline_err,
        "passed": passed,
        "reference": against.reference_kind,
        "rule": against.rule,
    }
    if not passed:
        result.status = "check-failed"
        result.error = f"{against.error_name} {err:.3g} exceeds tolerance {against.tolerance:.3g}"
    return passed


def check(result: Result, fn: Callable[[], object], against: Check) -> bool:
    """Run fn once and judge its output. A callable that raises is a result (status 'error')."""
    try:
        output = fn()
    except Exception as exc:  # a backend that crashes is a result, not the end of the run
        result.status, result.error = "error", f"{type(exc).__name__}: {exc}"
        return False
    return judge_output(result, output, against)


def fill(result: Result, samples: list[float], device: chips.Device, math_dtype: str | None,
         describe: Callable[[], dict] | None = None) -> None:  # fmt: skip
    """Samples, their summary and the rates against the device's peaks (of math_dtype)."""
    metrics.fill_timing(result, samples)
    if describe is not None:
        try:
            result.extra.update(describe())
        except Exception as exc:  # a description is a nicety: its failure is noted, not fatal
            result.extra["describe_error"] = f"{type(exc).__name__}: {exc}"
    metrics.fill_rates(result, device, math_dtype)


def time_one(item: Checked, sampling: Sampling) -> bool:
    """Time one checked callable alone and fill its result; False (status 'error') if it raised."""
    try:
        samples = sampling.samples(item.fn)
    except Exception as exc:
        item.result.status, item.result.error = "error", f"while timing: {type(exc).__name__}: {exc}"
        return False
    fill(item.result, samples, sampling.device, item.math_dtype, item.describe)
    return True


def time_together(items: Sequence[Checked], sampling: Sampling) -> None:
    """Time checked callables sample by sample in turn (timing.measure_interleaved); fill each."""
    try:
        all_samples = sampling.samples_together([item.fn for item in items])
    except Exception as exc:  # which one raised is not known: every one of the batch says so
        names = ", ".join(item.result.backend for item in items)
        for item in items:
            item.result.status = "error"
            item.result.error = f"while timing, interleaved ({names}): {type(exc).__name__}: {exc}"
        return
    for item, samples in zip(items, all_samples, strict=True):
        fill(item.result, samples, sampling.device, item.math_dtype, item.describe)
        item.result.extra["interleaved_with"] = [o.result.backend for o in items if o is not item]


def check_then_time(result: Result, fn: Callable[[], object], against: Check, sampling: Sampling,
                    math_dtype: str | None = None, describe: Callable[[], dict] | None = None) -> bool:  # fmt: skip
    """Check fn's output, and only if it passed, time fn; True when the result holds a timing."""
    return check(result, fn, against) and time_one(Checked(result, fn, math_dtype, describe), sampling)
