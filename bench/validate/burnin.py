"""Burn-in: sustained matmul load for --duration, sampled in windows of a few seconds.

The vendor's matmul (the load gpu-burn-style tools use) runs back to back; each window records the
achieved TFLOP/s and the device's telemetry (clocks, temperature, power, throttle reasons) in the
record's timeline, and compares its last product bit for bit with the first one (silent data
corruption shows up under heat first). Verdict: sustained throughput (median of the windows of the
second half) as a fraction of the burst (best of the first three windows), against the threshold;
any product that differs from the first is a FAIL. Ctrl-C (or the end of the duration on any rank)
ends the loop at the next window on every rank, and the record says so.
"""

from __future__ import annotations

import statistics
import time

import torch

from zhisuan.bench.core import flops, metrics, timing
from zhisuan.bench.harness import checktime
from zhisuan.bench.validate import tolerance
from zhisuan.bench.validate.context import CheckContext
from zhisuan.bench.validate.integrity import bits, first_difference
from zhisuan.bench.validate.matmul import make_inputs
from zhisuan.kernels import registry

TITLE = "Burn-in (sustained matmul)"
MAX_WINDOW_S = 5.0
MIN_WINDOW_S = 0.25
BURST_WINDOWS = 3


def window_seconds(duration_s: float) -> float:
    """About 20 windows per run, each between 0.25 and 5 seconds."""
    return min(MAX_WINDOW_S, max(MIN_WINDOW_S, duration_s / 20))


def vendor_backend(kind: str, dtype: torch.dtype):
    for backend in registry.registered("matmul").values():
        if backend.baseline and backend.why_not(kind, dtype) is None:
            return backend
    return None


def burst_and_sustained(rates: list[float]) -> tuple[float, float]:
    """(best of the first windows, median of the second half's windows)."""
    burst = max(rates[:BURST_WINDOWS])
    second_half = rates[len(rates) // 2 :]
    return burst, statistics.median(second_half)


def run(ctx: CheckContext) -> list:
    duration = ctx.plan.burn_in_s
    if duration <= 0:
        return []
    dtype = "fp32" if ctx.kind == "cpu" else "bf16"
    storage = registry.parse_dtype(dtype)
    size = ctx.plan.burn_in_size
    shape = {"M": size, "N": size, "K": size}
    result = ctx.record("burn-in", TITLE, shape=shape, dtype=dtype)
    backend = vendor_backend(ctx.kind, storage)
    if backend is None:
        return [ctx.skip(result, f"no vendor matmul backend for {dtype} on {ctx.kind}")]
    result.backend = backend.name
    a, b = make_inputs(ctx, dtype, size)
    reference = a.to(torch.float64) @ b.to(torch.float64)
    against = checktime.Check(
        reference,
        tolerance=tolerance.matmul_tolerance(a, b, reference, dtype, storage),
        rule=tolerance.describe("matmul"),
    )
    first = backend.fn(a, b)
    passed = checktime.judge_output(result, first, against)
    del reference, against
    if not passed:
        return [ctx.finish(ctx.fail(result, f"wrong product before the burn-in: {result.error}"))]
    call = ctx.timed(lambda: backend.fn(a, b))
    result.flops = flops.matmul_flops(size, size, size)
    result.bytes = flops.matmul_bytes(size, size, size, storage.itemsize)
    window_s = window_seconds(duration)
    timeline, per_call, mismatches = [], [], []
    start = time.perf_counter()
    interrupted = False
    while True:
        t0 = time.perf_counter() - start
        calls, elapsed, out = timing.run_for(call, device=ctx.device.torch_device, seconds=window_s)
        per_call.append(elapsed / calls)
        if not torch.equal(bits(out), bits(first)):
            mismatches.append(f"window {len(timeline)} (t={t0:.1f} s): {first_difference(out, first)}")
        telemetry = ctx.telemetry.read()
        timeline.append(
            {
                "t": round(time.perf_counter() - start, 3),
                "tflops": result.flops / (elapsed / calls) / 1e12,
                "sm_clock_mhz": telemetry.get("sm_clock_mhz"),
                "temp_c": telemetry.get("temp_c"),
                "power_w": telemetry.get("power_w"),
                "throttle": telemetry.get("throttle"),
            }
        )
        ran = time.perf_counter() - start
        ctx.step(f"burn-in {ran:.0f}/{duration:.0f} s")
        # One agreement per window: every rank stops together, at the end or on Ctrl-C anywhere.
        if ctx.should_stop(ran >= duration):
            interrupted = ran < duration
            break
    metrics.fill_timing(result, per_call)
    metrics.fill_rates(result, ctx.device, dtype)
    rates = [result.flops / s for s in per_call]
    burst, sustained = burst_and_sustained(rates)
    unit, scale = ctx.flop_unit()
    result.extra.update(
        timeline=timeline,
        windows=len(timeline),
        window_s=window_s,
        duration_s=time.perf_counter() - start,
        requested_duration_s=duration,
        interrupted=interrupted,
        burst=burst / scale,
        sustained=sustained / scale,
        mismatches=mismatches[:10],
    )
    if mismatches:
        reason = f"silent data corruption under load on {ctx.device.torch_device} ({ctx.host} rank {ctx.rank}): {mismatches[0]}"
        ctx.fail(result, reason, unit=unit)
        result.extra["value"] = sustained / scale
        return [ctx.finish(result)]
    rule = ctx.rule("burn-in", dtype)
    basis, text = ctx.basis_figure(rule, dtype, burst=burst) if rule else (None, "")
    note = "interrupted (Ctrl-C): judged on the windows that ran; " if interrupted else ""
    note += f"{len(timeline)} windows of {window_s:g} s, burst {burst / scale:.4g} {unit}"
    ctx.judge(result, value=sustained, unit=unit, rule=rule, basis=basis, basis_text=text, scale=scale,
              reason=note, not_remeasured="the basis is this burn-in's own burst: a second burn-in is a new run")  # fmt: skip
    return [ctx.finish(result)]
