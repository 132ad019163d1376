"""What every check gets: the device, the plan, the thresholds, the rank, and the shared steps of a
check (a record to fill, how to time (the harness's checktime.Sampling), the verdict against a
threshold). Checking and timing go through zhisuan.bench.harness.checktime, as in `zhisuan run`.

Test hook: ZHISUAN_VALIDATE_TEST_SLOW_RANK=R makes rank R a straggler, as a device running at a
third of its speed would be: every timed call does its work, then sleeps twice as long as the work
took (sleeping, so the other ranks on the same host keep their cores). The cluster view must flag it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from zhisuan.bench.core import chips, threads, timing
from zhisuan.bench.core.results import Result
from zhisuan.bench.harness import checktime
from zhisuan.bench.validate import hostload
from zhisuan.bench.validate.levels import LevelPlan
from zhisuan.bench.validate.remeasure import Settled, settle
from zhisuan.bench.validate.telemetry import reader_for
from zhisuan.bench.validate.thresholds import Rule, Thresholds, judge
from zhisuan.kernels import registry

SLOW_RANK_ENV = "ZHISUAN_VALIDATE_TEST_SLOW_RANK"
SLOW_FACTOR = 3
UNIT_SCALE = {"GB/s": 1e9, "TB/s": 1e12, "GFLOP/s": 1e9, "TFLOP/s": 1e12}
# A check's second measurement: (value, basis, basis text), the record's timing refilled.
Remeasure = Callable[[], tuple[float, float, str]]


# The keys every check's record carries in extra (the contract in bench/validate/__init__.py).
RECORD_KEYS = frozenset(
    {
        "check",
        "verdict",
        "value",
        "unit",
        "threshold",
        "reason",
        "host",
        "rank",
        "world",
        "sizes",
        "telemetry",
    }
)


@dataclass
class CheckContext:
    device: chips.Device
    plan: LevelPlan
    thresholds: Thresholds
    run_id: str
    env: dict
    rank: int = 0
    world: int = 1
    local_world: int = 1
    dist: object = None  # zhisuan.bench.collectives.driver.RankContext when the ranks form a process group
    # should_stop(local): True on every rank once any rank asks (Ctrl-C, or local=True there).
    # A collective call in cluster mode: every rank calls it at the same points.
    should_stop: Callable[..., bool] = lambda local=False: local
    progress: object = (
        None  # zhisuan.bench.collectives.watchdog.Progress: steps and collective calls, for the watchdog
    )
    host: str = field(default_factory=socket.gethostname)

    def __post_init__(self):
        if self.progress is None:
            from zhisuan.bench.collectives.watchdog import Progress

            self.progress = Progress()
        self.telemetry = reader_for(self.device)
        self.begin_check()
        slow = os.environ.get(SLOW_RANK_ENV)
        self.slow = slow is not None and slow.strip() == str(self.rank)

    @property
    def kind(self) -> str:
        return self.device.kind

    @property
    def chip_id(self) -> str | None:
        return self.device.spec.id if self.device.spec else None

    def begin_check(self) -> None:
        """A check starts: the host's busy-ness is judged from here on (hostload)."""
        self.since = hostload.CpuTimes.now()

    def step(self, label: str) -> None:
        """Tell the watchdog which step this rank starts."""
        self.progress.step(label)

    def flop_unit(self) -> tuple[str, float]:
        """The unit FLOP/s are reported in on this device: GFLOP/s on CPUs, TFLOP/s on GPUs."""
        return ("GFLOP/s", 1e9) if self.kind == "cpu" else ("TFLOP/s", 1e12)

    def record(self, op: str, title: str, *, backend: str = "-", shape: dict | None = None,
               dtype: str = "") -> Result:  # fmt: skip
        result = Result(
            kind="validate",
            op=op,
            backend=backend,
            shape=dict(shape or {}),
            dtype=dtype,
            device=self.device.torch_device,
            device_name=self.device.name,
            env=self.env,
            run_id=self.run_id,
        )
        result.extra.update(
            check=title, host=self.host, rank=self.rank, world=self.world, sizes=self.plan.sizes
        )
        return result

    def runnable_backends(self, op: str, dtype: torch.dtype) -> tuple[list, dict[str, str]]:
        """(registry backends of op that run dtype here and now, {backend: why not}).

        At a level that runs the vendor's only (quick on a GPU), the others are listed as skipped;
        a backend that runs in an interpreter here is skipped too (its times mean nothing).
        """
        chosen, skipped = [], {}
        for backend in registry.registered(op).values():
            if not self.plan.all_backends and not backend.baseline:
                skipped[backend.name] = f"{self.plan.level} level runs the vendor's backend only"
                continue
            reason = backend.why_not(self.kind, dtype)
            if reason is None and backend.interpreted(self.kind):
                reason = "runs in an interpreter here: its times mean nothing"
            if reason:
                skipped[backend.name] = reason
            else:
                chosen.append(backend)
        return chosen, skipped

    def rule(self, check: str, dtype: str) -> Rule | None:
        return self.thresholds.find(self.chip_id, self.kind, check, dtype)

    # ---- timing ---------------------------------------------------------------------------------

    def timed(self, fn: Callable[[], object]) -> Callable[[], object]:
        """fn as the timer should run it (SLOW_FACTOR times slower on the test hook's slow rank)."""
        if not self.slow:
            return fn
        device = self.device.torch_device

        def slowed():
            start = time.perf_counter()
            out = fn()
            timing.synchronize(device)
            time.sleep((SLOW_FACTOR - 1) * (time.perf_counter() - start))
            return out

        return slowed

    def sampling(self, *, flush: bool = True) -> checktime.Sampling:
        """This level's sample budget, caches flushed between samples unless flush=False."""
        return checktime.Sampling(
            self.device,
            timing.TimingPlan(time_budget_s=self.plan.time_budget_s),
            flush=flush and self.plan.flush,
            wrap=self.timed,
        )

    def time(self, fn: Callable[[], object], *, flush: bool = True) -> list[float]:
        """Samples of fn (a copy or a collective: something checked by its caller's own means)."""
        return self.sampling(flush=flush).samples(fn)

    # ---- verdicts -------------------------------------------------------------------------------

    def basis_figure(self, rule: Rule, dtype: str, *, ceiling: float | None = None,
                     burst: float | None = None) -> tuple[float | None, str]:  # fmt: skip
        """(the basis in the check's own unit scale, its description) for a rule; None when unknown.

        FLOP figures come back in FLOP/s, bandwidth in bytes/s (a 'value' rule's figure too).
        """
        if rule.basis == "datasheet":
            if dtype == "bandwidth":
                fig = self.device.peak_bandwidth()
                if fig is None:
                    return None, f"no datasheet memory bandwidth for {self.device.name}"
                return fig.value * 1e12, f"datasheet {fig.value:g} TB/s [{fig.status}]"
            fig = self.device.peak(dtype)
            if fig is None:
                why = self.device.why_no_peak or f"no datasheet {dtype} peak for {self.device.name}"
                return None, why
            return fig.value * 1e12, f"datasheet {dtype} {fig.value:g} TFLOP/s [{fig.status}]"
        if rule.basis == "measured-fma":
            measured = chips.measured_peak_flops(self.device, dtype)
            if not measured:
                return None, f"no measured {dtype} FMA peak (zhisuan.kernels._C's probe is unavailable)"
            unit, scale = self.flop_unit()
            return (
                measured,
                f"measured {dtype} FMA peak {measured / scale:.4g} {unit} (zhisuan.kernels._C probe)",
            )
        if rule.basis == "copy-ceiling":
            if ceiling is None:
                return None, "the all-core copy was not measured"
            return (
                ceiling,
                f"the all-core copy {ceiling / 1e9:.4g} GB/s (numpy.copyto per thread, same arrays, this run)",
            )
        if rule.basis == "burst":
            if burst is None:
                return None, "no burst figure"
            return burst, "burst (best of the first windows)"
        if rule.unit not in UNIT_SCALE:
            return None, f"threshold unit {rule.unit!r} is not one of {', '.join(UNIT_SCALE)}"
        return rule.reference * UNIT_SCALE[rule.unit], f"the reference {rule.reference:g} {rule.unit}"

    def judge(self, result: Result, *, value: float, unit: str, rule: Rule | None, basis: float | None,
              basis_text: str, scale: float = 1.0, reason: str = "", remeasure: Remeasure | None = None,
              not_remeasured: str = "") -> None:  # fmt: skip
        """Fill the verdict fields of result.extra: value (in unit) against the rule's fractions of basis.

        value and basis share one scale (e.g. both in FLOP/s); `scale` turns them into `unit`.
        No rule or no basis: WARN, because a figure that cannot be judged has not been validated.
        A value below the warn fraction is measured again (remeasure(): a fresh (value, basis,
        basis_text), with the record's timing refilled) and the host examined before it FAILs
        (zhisuan.bench.validate.remeasure); without remeasure, not_remeasured says why not.
        """
        extra = result.extra
        extra.update(value=value / scale, unit=unit)
        if rule is None:
            extra.update(
                verdict="WARN",
                threshold=None,
                reason=f"no threshold for this chip and check; {reason}".rstrip("; "),
            )
            return
        if basis is None:
            extra.update(verdict="WARN", threshold=self.threshold(rule, None, basis_text, scale),
                         reason=f"cannot judge: {basis_text}")  # fmt: skip
            return
        ratio = value / basis
        if judge(ratio, rule) == "FAIL":
            value, basis, basis_text, settled = self.confirm_shortfall(
                result, (value, basis, basis_text), rule, remeasure, not_remeasured
            )
            verdict, note = settled.verdict, settled.note
            ratio = value / basis
            if result.status != "ok":  # the second run's output was wrong or it crashed: a finding
                verdict, note = "FAIL", f"the re-measure failed: {result.error}"
        else:
            _, busy = self.host_state(probe=False)
            verdict, note = judge(ratio, rule), "host busy: " + "; ".join(busy) if busy else ""
        text = f"{100 * ratio:.1f}% of {basis_text} (pass >= {100 * rule.pass_fraction:g}%, warn >= {100 * rule.warn_fraction:g}%)"
        extra.update(
            value=value / scale,
            verdict=verdict,
            threshold=self.threshold(rule, basis, basis_text, scale),
            ratio=ratio,
            reason="; ".join(p for p in (text, reason, note) if p),
        )

    @staticmethod
    def threshold(rule: Rule, basis: float | None, basis_text: str, scale: float) -> dict:
        return {
            "pass": rule.pass_fraction,
            "warn": rule.warn_fraction,
            "basis": f"fraction of {basis_text}",
            "reference": None if basis is None else basis / scale,
            "compare": ">=",
            "source": rule.source,
        }

    def confirm_shortfall(self, result: Result, measured: tuple[float, float, str], rule: Rule,
                          remeasure: Remeasure | None, not_remeasured: str) -> tuple[float, float, str, Settled]:  # fmt: skip
        """Measure a shortfall again and read the host.

        Returns (value, basis, basis_text) of the latest measurement and the settled verdict.
        """
        first_ratio = measured[0] / measured[1]
        second_ratio = None
        not_remeasured = not_remeasured or "this check cannot be re-measured alone"
        if remeasure is not None:
            self.step(f"{result.op}: short of the threshold, measuring again")
            try:
                measured = remeasure()
                second_ratio = measured[0] / measured[1]
            except Exception as exc:  # a crash on the second run is a finding of its own
                not_remeasured = f"the re-measure raised {type(exc).__name__}: {exc}"
        evidence, busy = self.host_state(probe=True)
        settled = settle(rule, first_ratio, second_ratio, busy, not_remeasured)
        result.extra["remeasure"] = {"first_ratio": first_ratio, "second_ratio": second_ratio, "busy": busy,
                                     "host": evidence}  # fmt: skip
        return (*measured, settled)

    def host_state(self, *, probe: bool) -> tuple[dict, list[str]]:
        """(readings of the host since this check began, why it counts as busy: empty when quiet)."""
        evidence = hostload.gather(self.kind, self.since, self.telemetry, probe=probe)
        busy = hostload.busy_reasons(evidence, kind=self.kind, cores=chips.logical_cpus(),
                                     allowance_cores=self.siblings_cores())  # fmt: skip
        return evidence, busy

    def siblings_cores(self) -> float:
        """Cores the other ranks of this run on this host may use (they compute alongside this one)."""
        return (self.local_world - 1) * threads.per_rank(self.local_world) if self.kind == "cpu" else 0.0

    def fail(self, result: Result, reason: str, *, unit: str = "", status: str | None = None) -> Result:
        result.extra.update(verdict="FAIL", value=None, unit=unit, threshold=None, reason=reason)
        if status:
            result.status = status
            result.error = result.error or reason
        return result

    def skip(self, result: Result, reason: str) -> Result:
        result.extra.update(verdict="SKIP", value=None, unit="", threshold=None, reason=reason)
        return self.finish(result)

    def finish(self, result: Result) -> Result:
        """Attach the device's telemetry, read right after the measurement; a short verdict names
        the throttling it read (an H200 held to 1545 MHz by its power cap WARNed on bf16 matmul)."""
        telemetry = result.extra["telemetry"] = self.telemetry.read()
        throttle = telemetry.get("throttle")
        if throttle and result.extra.get("verdict") in ("WARN", "FAIL"):
            clock = telemetry.get("sm_clock_mhz")
            at = f" (SM clock {clock} MHz)" if clock else ""
            note = f"throttled right after the measurement: {', '.join(throttle)}{at}"
            result.extra["reason"] = "; ".join(p for p in (result.extra.get("reason"), note) if p)
        return result
