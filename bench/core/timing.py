"""Timing: one Timer per device kind, warm-up, cache flush between samples, every sample kept.

- HostTimer (CPU work): the host clock around each call. The kernels it times are synchronous.
  torch.Event cannot time the CPU (torch 2.13 raises "cpu backend doesn't support events" when
  one is recorded), so the CPU keeps the host clock; nothing is lost: CPU work is synchronous.
- EventTimer (any accelerator: CUDA and ROCm GPUs, Ascend NPUs, XPUs, ...): a pair of
  torch.Event(enable_timing=True) around each call on the device's current stream; the host
  synchronises once, after the last sample, so launches are not serialised by the timer itself.
The device-specific calls (events, streams, synchronize) go through zhisuan.bench.core.accel.

Between samples, outside the timed region, a buffer twice the size of the last-level cache (CPU)
or L2 (accelerator) is overwritten, so every sample starts cold, as a kernel inside a model would.

measure_interleaved times several callables in turn, one sample of each per round (the first
callable rotating), for side-by-side comparisons on a shared host: neighbours' load comes in
spells of seconds, and interleaved samples of two kernels see the same spells, where one block of
samples per kernel can land one in a quiet spell and the other in a busy one.

run_for calls a callable back to back for a wall-clock window (sustained throughput, burn-in).

A `before` callable (the harness's input variation: a sign flip of one input, so that no cache
can answer) runs before each sample's cache flush, outside the timed region too.

The sample count is either explicit (`iters`, exactly that many) or a `time_budget_s` (as many as
fit, at least MIN_SAMPLES); never both. A sample's cost includes its cache flush, so the budget
bounds the wall time: a flush of a large last-level cache (600 MB on a VM that reports a 300 MiB
L3) can take 50 ms, far longer than a small kernel.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from zhisuan.bench.core import accel
from zhisuan.bench.core.errors import UsageError

MIN_SAMPLES = 3
MAX_SAMPLES = 100_000
DEFAULT_TIME_BUDGET_S = 0.5
DEFAULT_WARMUP_S = 0.05
DEVICE_CALLS_PER_SYNC = 8  # run_for: accelerator calls queued between synchronisations


_FLUSHERS: dict[tuple[int, str], CacheFlusher] = {}


class CacheFlusher:
    """Evicts caches by overwriting a buffer of `nbytes` on `device` (outside any timed region)."""

    def __init__(self, nbytes: int, device: str):
        # Written once here: the first write of fresh memory faults every page in (41 ms for 64 MiB
        # on a 2-core EPYC VM, against 7 ms for a later flush). Measured by flush_cost, that first
        # write sized a time budget for a flush six times dearer than it is: 3 samples a round
        # where 18 fit, and round medians of 3 samples spread +-11%.
        self.buffer = torch.zeros(max(int(nbytes), 1) // 4, dtype=torch.int32, device=device)
        self.value = 0

    @classmethod
    def shared(cls, nbytes: int, device: str) -> CacheFlusher:
        """One flusher per size and device in a process: its buffer is written (first touch) once,
        not by every measurement (a suite's worth of them in one process paid 40 ms each)."""
        key = (int(nbytes), str(device))
        if key not in _FLUSHERS:
            _FLUSHERS[key] = cls(nbytes, device)
        return _FLUSHERS[key]

    def __call__(self) -> None:
        self.value ^= 1  # alternate the value so no layer can skip an unchanged write
        self.buffer.fill_(self.value)


class HostTimer:
    """Times synchronous host work with time.perf_counter()."""

    device = "cpu"

    def run(self, fn: Callable[[], object], n: int, flush: Callable[[], None] | None) -> list[float]:
        samples = []
        clock = time.perf_counter
        output = None
        for _ in range(n):
            if flush is not None:
                flush()
            start = clock()
            output = fn()
            samples.append(clock() - start)
        self.last_output = output  # for the harness's check of the last timed call
        return samples


class EventTimer:
    """Times accelerator work with torch.Event pairs on the device's current stream; one
    synchronisation at the end."""

    def __init__(self, device: str):
        dev = torch.device(device)
        self.device = torch.device(dev.type, accel.index_of(dev))

    def run(self, fn: Callable[[], object], n: int, flush: Callable[[], None] | None) -> list[float]:
        stream = accel.current_stream(self.device)
        pairs = [(accel.timing_event(self.device), accel.timing_event(self.device)) for _ in range(n)]
        output = None
        for start, end in pairs:
            if flush is not None:
                flush()
            start.record(stream)
            output = fn()
            end.record(stream)
        accel.synchronize(self.device)
        self.last_output = output  # for the harness's check of the last timed call
        return [start.elapsed_time(end) / 1e3 for start, end in pairs]


def timer_for(device: str) -> HostTimer | EventTimer:
    """The host clock for the CPU, device events for any accelerator torch has a module for."""
    dev = torch.device(device)
    if dev.type == "cpu":
        return HostTimer()
    try:
        accel.device_module(dev.type)
    except (RuntimeError, AttributeError):
        raise ValueError(
            f"no timer for device {device!r}: torch has no device module for {dev.type!r}"
        ) from None
    return EventTimer(device)


def synchronize(device: str) -> None:
    """Wait until the device has finished the work queued so far (a no-op on the CPU)."""
    accel.synchronize(device)


@dataclass
class TimingPlan:
    """How many samples to take: an explicit count, or as many as fit in a time budget."""

    iters: int | None = None
    time_budget_s: float | None = None
    warmup_s: float = DEFAULT_WARMUP_S

    def __post_init__(self):  # the caller's arguments (bench.run, bench.measure, the fixture)
        if self.iters is not None and self.time_budget_s is not None:
            raise UsageError("give either iters or time_budget_s, not both")
        if self.iters is not None and (
            isinstance(self.iters, bool) or not isinstance(self.iters, int) or self.iters < 1
        ):
            raise UsageError(f"iters must be an integer of at least 1, got {self.iters!r}")
        if self.time_budget_s is not None and not (
            isinstance(self.time_budget_s, int | float)
            and math.isfinite(self.time_budget_s)
            and self.time_budget_s > 0
        ):
            raise UsageError(
                f"time_budget_s must be a positive, finite number of seconds, got {self.time_budget_s!r}"
            )
        if self.iters is None and self.time_budget_s is None:
            self.time_budget_s = DEFAULT_TIME_BUDGET_S

    def sample_count(self, seconds_per_call: float) -> int:
        if self.iters is not None:
            return self.iters
        fit = int(self.time_budget_s / max(seconds_per_call, 1e-9))
        return max(MIN_SAMPLES, min(MAX_SAMPLES, fit))


def between_samples(
    before: Callable[[], None] | None, flush: CacheFlusher | None
) -> Callable[[], None] | None:
    """What runs before each sample, untimed: the caller's `before`, then the cache flush."""
    if before is None or flush is None:
        return before or flush

    def both() -> None:
        before()
        flush()

    return both


def measure(
    fn: Callable[[], object],
    *,
    device: str = "cpu",
    plan: TimingPlan | None = None,
    flush_bytes: int | None = None,
    before: Callable[[], None] | None = None,
    keep_output: Callable[[object], None] | None = None,
) -> list[float]:
    """Time fn (zero arguments) on device; returns every sample in seconds.

    Warm-up: fn runs once (compilation, autotuning, first-touch), then again until warmup_s has
    passed; the warm-up calls also estimate the cost of one call, which sizes a time budget.
    flush_bytes: size of the cache-flush buffer (None or 0: no flush, a warm-cache measurement).
    before: called before each sample (and before its flush), untimed.
    keep_output: called with the output of the last timed call (the harness checks it).
    """
    plan = plan or TimingPlan()
    timer = timer_for(device)
    flush = CacheFlusher.shared(flush_bytes, device) if flush_bytes else None
    per_call_s = warm_up(fn, device, plan) + flush_cost(flush, device, plan)
    samples = timer.run(fn, plan.sample_count(per_call_s), between_samples(before, flush))
    if keep_output is not None:
        keep_output(timer.last_output)
    return samples


def measure_interleaved(
    fns: Sequence[Callable[[], object]],
    *,
    device: str = "cpu",
    plan: TimingPlan | None = None,
    flush_bytes: int | None = None,
    before: Sequence[Callable[[], None] | None] = (),
    keep_output: Callable[[int, object], None] | None = None,
) -> list[list[float]]:
    """Time several callables sample by sample in turn; returns every sample of each, in order.

    Round i times fns[i % k], fns[(i + 1) % k], ... (k callables), each sample after its own cache
    flush. The plan counts samples per callable: n rounds give each n samples, and a time budget
    is each callable's share, as if it ran alone (the whole takes about k times the budget).
    before[j], where given, runs before each sample of fns[j] (and before its flush), untimed;
    keep_output(j, output) gets the output of the last timed call of fns[j].
    """
    if not fns:
        raise ValueError("measure_interleaved: no callables")
    plan = plan or TimingPlan()
    timer = timer_for(device)
    flush = CacheFlusher.shared(flush_bytes, device) if flush_bytes else None
    hooks = list(before) + [None] * (len(fns) - len(before))
    between = [between_samples(hook, flush) for hook in hooks]
    call_s = [warm_up(fn, device, plan) for fn in fns]
    per_call_s = sum(call_s) / len(fns) + flush_cost(flush, device, plan)
    samples: list[list[float]] = [[] for _ in fns]
    last: list[object] = [None] * len(fns)
    for i in range(plan.sample_count(per_call_s)):
        for j in range(len(fns)):
            which = (i + j) % len(fns)
            samples[which] += timer.run(fns[which], 1, between[which])
            last[which] = timer.last_output
    if keep_output is not None:
        for j, output in enumerate(last):
            keep_output(j, output)
    return samples


def run_for(fn: Callable[[], object], *, device: str = "cpu", seconds: float) -> tuple[int, float, object]:
    """Call fn back to back for about `seconds`: (calls, elapsed seconds, the last call's output).

    A throughput window, not per-call samples (the burn-in's measure). On an accelerator the clock
    is read after a synchronisation every DEVICE_CALLS_PER_SYNC calls, so all queued work is
    counted and the host never runs far ahead of the device.
    """
    calls_per_read = DEVICE_CALLS_PER_SYNC if accel.is_accelerator(torch.device(device).type) else 1
    calls, start = 0, time.perf_counter()
    while True:
        output = fn()
        calls += 1
        if calls % calls_per_read:
            continue
        synchronize(device)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls, elapsed, output


def warm_up(fn: Callable[[], object], device: str, plan: TimingPlan) -> float:
    """Run fn once (compilation, autotuning, first touch), then until warmup_s has passed.

    Returns the mean time of the later calls: the estimate that sizes a time budget.
    """
    fn()
    synchronize(device)
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        synchronize(device)
        elapsed = time.perf_counter() - start
        if elapsed >= plan.warmup_s or calls >= 1000:
            return elapsed / calls


def flush_cost(flush: CacheFlusher | None, device: str, plan: TimingPlan) -> float:
    """Seconds of one cache flush (measured once), when a time budget must count it; else 0."""
    if flush is None or plan.iters is not None:
        return 0.0
    start = time.perf_counter()
    flush()
    synchronize(device)
    return time.perf_counter() - start
