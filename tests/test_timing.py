import time

import pytest

from bench import timing
from bench.stats import summarize


def busy_wait(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@pytest.mark.parametrize("duration", [200e-6, 2e-3])
def test_host_timer_measures_known_durations(duration):
    samples = timing.measure(lambda: busy_wait(duration), plan=timing.TimingPlan(iters=20))
    assert len(samples) == 20
    median = summarize(samples).median_s
    assert duration <= median < duration * 1.5 + 50e-6


def test_time_budget_bounds_the_sample_count():
    plan = timing.TimingPlan(time_budget_s=0.05)
    start = time.perf_counter()
    samples = timing.measure(lambda: busy_wait(1e-3), plan=plan)
    assert timing.MIN_SAMPLES <= len(samples) <= 60
    assert time.perf_counter() - start < 1.0


def test_time_budget_counts_the_cache_flush(monkeypatch):
    # A flush (10 ms here) much slower than the kernel (~0): the budget still bounds the wall time.
    monkeypatch.setattr(timing.CacheFlusher, "__call__", lambda self: busy_wait(10e-3))
    plan = timing.TimingPlan(time_budget_s=0.1, warmup_s=0.01)
    start = time.perf_counter()
    samples = timing.measure(lambda: None, plan=plan, flush_bytes=1 << 20)
    assert timing.MIN_SAMPLES <= len(samples) <= 12
    assert time.perf_counter() - start < 0.5


def test_flush_runs_outside_the_timed_region():
    # A 64 MiB flush takes milliseconds; the samples of an empty callable must not contain it.
    samples = timing.measure(lambda: None, plan=timing.TimingPlan(iters=5), flush_bytes=64 << 20)
    assert max(samples) < 1e-3


def test_overhead_of_an_empty_callable_is_small():
    # The committed figure (< 5 us) is in docs/benchmarks/cpu.md; here only a loose sanity bound.
    samples = timing.measure(lambda: None, plan=timing.TimingPlan(iters=200))
    assert summarize(samples).median_s < 50e-6


def test_plan_validation():
    with pytest.raises(ValueError, match="either iters or time_budget_s"):
        timing.TimingPlan(iters=3, time_budget_s=1.0)
    with pytest.raises(ValueError, match="iters must be at least 1"):
        timing.TimingPlan(iters=0)
    with pytest.raises(ValueError, match="no timer for device"):
        timing.timer_for("meta")


def test_summary_statistics():
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s.median_s == 3.0 and s.iqr_s == 2.0 and s.n == 5 and s.min_s == 1.0
    with pytest.raises(ValueError):
        summarize([])


@pytest.mark.gpu
def test_cuda_timer_measures_a_known_gpu_sleep():
    import torch

    # torch.cuda._sleep spins for a number of GPU clock cycles; calibrate cycles -> seconds first.
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    torch.cuda._sleep(10_000_000)
    end.record()
    torch.cuda.synchronize()
    per_cycle = start.elapsed_time(end) / 1e3 / 10_000_000
    cycles = int(1e-3 / per_cycle)  # about 1 ms
    samples = timing.measure(
        lambda: torch.cuda._sleep(cycles), device="cuda", plan=timing.TimingPlan(iters=20)
    )
    assert summarize(samples).median_s == pytest.approx(cycles * per_cycle, rel=0.2)
    # The timer must not serialise launches: flush between samples stays outside the events.
    flushed = timing.measure(lambda: torch.cuda._sleep(cycles), device="cuda", plan=timing.TimingPlan(iters=5),
                             flush_bytes=256 << 20)  # fmt: skip
    assert summarize(flushed).median_s == pytest.approx(cycles * per_cycle, rel=0.2)
