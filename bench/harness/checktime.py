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

A first call that passes proves little about the calls that are timed: a backend may cache its
answer, return garbage after its first call, or write into its inputs. So, for a Checked that
carries its check (`against`):
  - the output of the last timed call is checked too (status "check-failed" if it is wrong);
  - with `varying` (the runner's inputs: one input negated in place before every sample, outside
    the timed region; sign flips are exact, so the reference of the negated inputs is the negated
    reference and nothing is recomputed), a cache keyed on the inputs' identity answers wrongly.
    When the last timed call ran on the original inputs, one more (untimed) call on the negated
    inputs is checked, so a stale answer is always caught;
  - with `inputs`, the tensors are fingerprinted before the first call, after it and after the
    timing (fingerprint.py): a backend that writes into them gets status "mutated".
And fill() gives status "suspect", and no rates, to a rate above what the chip can do
(metrics.fill_rates): the last line of defence, for a cache keyed on the inputs' values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from zhisuan.bench.core import chips, metrics, timing
from zhisuan.bench.core.results import Result
from zhisuan.bench.harness.fingerprint import fingerprint
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

    def samples(self, fn: Callable[[], object], before: Callable[[], None] | None = None,
                keep_output: Callable[[object], None] | None = None) -> list[float]:  # fmt: skip
        return timing.measure(
            self.wrap(fn), device=self.device.torch_device, plan=self.plan, flush_bytes=self.flush_bytes,
            before=before, keep_output=keep_output,
        )  # fmt: skip

    def samples_together(self, fns: Sequence[Callable[[], object]],
                         before: Sequence[Callable[[], None] | None] = (),
                         keep_output: Callable[[int, object], None] | None = None) -> list[list[float]]:  # fmt: skip
        return timing.measure_interleaved(
            [self.wrap(fn) for fn in fns],
            device=self.device.torch_device,
            plan=self.plan,
            flush_bytes=self.flush_bytes,
            before=before,
            keep_output=keep_output,
        )


@dataclass
class Varying:
    """Inputs negated in place between timed samples, so that no cache can answer (module docstring).

    flip() negates one input in place; flipped(reference) is the exact answer for negated inputs.
    """

    flip: Callable[[], None]
    flipped: Callable[[Any], Any]
    flips: int = 0

    def step(self) -> None:
        self.flip()
        self.flips += 1

    @property
    def negated(self) -> bool:
        return self.flips % 2 == 1

    def reference(self, reference: Any) -> Any:
        """The reference of the inputs as they are now."""
        return self.flipped(reference) if self.negated else reference

    def restore(self) -> None:
        if self.negated:
            self.step()


@dataclass
class Checked:
    """A callable whose output passed its check, waiting to be timed, with what its rates need."""

    result: Result
    fn: Callable[[], object]
    math_dtype: str | None = None  # the arithmetic's dtype: the peak the rates are set against
    describe: Callable[[], dict] | None = None  # facts for result.extra, gathered once, untimed
    against: Check | None = None  # checked again on the output of the last timed call
    inputs: Sequence[Any] = ()  # tensors fn must not write into (fingerprinted before and after)
    varying: Varying | None = None  # inputs changed between samples (needs `against`)
    inputs_fingerprint: tuple | None = None  # of `inputs` before the first call

    def __post_init__(self):
        if self.inputs and self.inputs_fingerprint is None:
            self.inputs_fingerprint = fingerprint(self.inputs)


def error_of(output: Any, against: Check, reference: Any) -> tuple[float, str | None]:
    """(error of output against reference, None), or (NaN, why) for an output that cannot be
    compared at all: the wrong shape, the wrong type, None. That is the backend's fault, a result."""
    try:
        return float(against.error(output, reference)), None
    except (ValueError, TypeError, AttributeError, RuntimeError) as exc:
        return math.nan, f"its output cannot be compared with the reference: {type(exc).__name__}: {exc}"


def judge_output(result: Result, output: Any, against: Check) -> bool:
    """Compare one output with the reference; fill result.check (and the failure's status)."""
    err, why = error_of(output, against, against.reference)
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
        result.error = why or f"{against.error_name} {err:.3g} exceeds tolerance {against.tolerance:.3g}"
    return passed


def check(result: Result, fn: Callable[[], object], against: Check, inputs: Sequence[Any] = (),
          inputs_fingerprint: tuple | None = None) -> bool:  # fmt: skip
    """Run fn once and judge its output. A callable that raises is a result (status 'error'); one
    that writes into `inputs` (tensors, fingerprinted before and after) is status 'mutated'.
    inputs_fingerprint: the inputs' fingerprint, where the caller has taken it already."""
    before = inputs_fingerprint or (fingerprint(inputs) if inputs else None)
    try:
        output = fn()
    except Exception as exc:  # a backend that crashes is a result, not the end of the run
        result.status, result.error = "error", f"{type(exc).__name__}: {exc}"
        return False
    if inputs and fingerprint(inputs) != before:
        mark_mutated(result, "its first call")
        return False
    return judge_output(result, output, against)


def mark_mutated(result: Result, when: str) -> None:
    result.status = "mutated"
    result.error = f"wrote into its inputs during {when}: nothing it computed is trusted (other backends get their own inputs)"


def confirm(item: Checked, last_output: Any) -> bool:
    """After timing: the last timed call's output checked again, and the inputs unchanged.

    False (and the result's status says why) when the output of a timed call was wrong or the
    inputs were written into; result.check["last_call"] records the second check.
    """
    against, varying, result = item.against, item.varying, item.result
    passed = True
    if against is not None:
        reference = varying.reference(against.reference) if varying else against.reference
        passed = _judge_again(result, last_output, against, reference, "the last timed call")
        if passed and varying is not None and not varying.negated:
            varying.step()  # the last timed call saw the original inputs: one call on negated ones
            passed = _judge_again(result, item.fn(), against, varying.reference(against.reference),
                                  "a call on sign-flipped inputs after the timing")  # fmt: skip
    if varying is not None:
        varying.restore()
    if item.inputs and fingerprint(item.inputs) != item.inputs_fingerprint:
        mark_mutated(result, "the timed calls")
        return False
    return passed


def _judge_again(result: Result, output: Any, against: Check, reference: Any, which: str) -> bool:
    err, why = error_of(output, against, reference)
    passed = err == err and err <= against.tolerance
    result.check["last_call"] = {"max_abs_err": err, "passed": passed, "which": which}
    if not passed:
        result.status = "check-failed"
        result.error = (
            f"{why or f'{against.error_name} {err:.3g}'} of {which}"
            + ("" if why else f" exceeds tolerance {against.tolerance:.3g}")
            + " (its first call passed: later calls computed something else, or a cache answered)"
        )
    return passed


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


def _confirmed(item: Checked, last_output: Any) -> bool:
    """confirm(), with a crash of the extra call reported as the result's error."""
    try:
        return confirm(item, last_output)
    except Exception as exc:  # the extra call on negated inputs is the backend's code too
        item.result.status, item.result.error = "error", f"after timing: {type(exc).__name__}: {exc}"
        return False


def _before(item: Checked) -> Callable[[], None] | None:
    return item.varying.step if item.varying is not None and item.against is not None else None


def time_one(item: Checked, sampling: Sampling) -> bool:
    """Time one checked callable alone, confirm its last output and inputs, and fill its result;
    False (and the status says why) if it raised, computed something else or wrote into its inputs."""
    last: list[Any] = [None]
    try:
        samples = sampling.samples(
            item.fn, _before(item), keep_output=lambda output: last.__setitem__(0, output)
        )
    except Exception as exc:
        item.result.status, item.result.error = "error", f"while timing: {type(exc).__name__}: {exc}"
        return False
    if not _confirmed(item, last[0]):
        return False
    fill(item.result, samples, sampling.device, item.math_dtype, item.describe)
    return item.result.timed


def time_block(
    item: Checked, device: str, count: int, flush: Callable[[], None] | None
) -> list[float] | None:
    """`count` samples of a checked callable (`zhisuan ab`'s block), each after the input negation
    and the flush, as time_one takes them; the last output and the inputs confirmed afterwards.
    None (and the result's status says why) when a timed call computed something else or wrote
    into its inputs."""
    timer = timing.timer_for(device)
    samples = timer.run(item.fn, count, timing.between_samples(_before(item), flush))
    return samples if _confirmed(item, timer.last_output) else None


def time_together(items: Sequence[Checked], sampling: Sampling) -> None:
    """Time checked callables sample by sample in turn (timing.measure_interleaved); confirm and fill each."""
    lasts: list[Any] = [None] * len(items)
    try:
        all_samples = sampling.samples_together(
            [item.fn for item in items], [_before(item) for item in items], keep_output=lasts.__setitem__
        )
    except Exception as exc:  # which one raised is not known: every one of the batch says so
        names = ", ".join(item.result.backend for item in items)
        for item in items:
            item.result.status = "error"
            item.result.error = f"while timing, interleaved ({names}): {type(exc).__name__}: {exc}"
        return
    for item, last, samples in zip(items, lasts, all_samples, strict=True):
        item.result.extra["interleaved_with"] = [o.result.backend for o in items if o is not item]
        if _confirmed(item, last):
            fill(item.result, samples, sampling.device, item.math_dtype, item.describe)


def check_then_time(result: Result, fn: Callable[[], object], against: Check, sampling: Sampling,
                    math_dtype: str | None = None, describe: Callable[[], dict] | None = None,
                    inputs: Sequence[Any] = ()) -> bool:  # fmt: skip
    """Check fn's output, and only if it passed, time fn (its last output checked as well); True
    when the result holds a timing. inputs: tensors fn must not write into."""
    item = Checked(result, fn, math_dtype, describe, against=against, inputs=inputs)
    return check(result, fn, against, inputs, item.inputs_fingerprint) and time_one(item, sampling)
