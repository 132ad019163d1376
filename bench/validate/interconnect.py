"""Interconnect: all_reduce bus bandwidth across the ranks, and host <-> device copies on GPUs.

all_reduce goes through the collectives benchmark (zhisuan.bench.collectives): its buffers, exactly
representable check data, timing loop and bus factor (2(n-1)/n, nccl-tests' convention), in place,
fp32 sum, with torch.distributed's backend of the device (NCCL on GPUs, gloo on CPUs). Every rank
records its own figure; a wrong element anywhere is a FAIL.

h2d / d2h: one pinned host buffer copied to / from the device (non-blocking copies on the current
stream, timed with CUDA events), checked byte for byte first.
"""

from __future__ import annotations

import numpy as np
import torch

from zhisuan.bench.core import metrics, timing
from zhisuan.bench.harness import checktime
from zhisuan.bench.validate.context import CheckContext

ALLREDUCE_TITLE = "All-reduce bus bandwidth"
WARMUP_ITERS = 3


def all_reduce(ctx: CheckContext):
    size = ctx.plan.allreduce_bytes
    result = ctx.record(
        "all_reduce",
        ALLREDUCE_TITLE,
        backend="torch",
        shape={"bytes": size, "ranks": ctx.world},
        dtype="fp32",
    )
    if ctx.world == 1:
        return ctx.skip(
            result,
            "one rank: run under torchrun / srun / mpirun, or with --nproc N, to measure the interconnect",
        )
    try:
        from zhisuan.bench.collectives import driver, ops
    except ImportError as exc:
        return ctx.skip(result, f"the collectives benchmark is unavailable ({exc})")
    import torch.distributed as dist

    coll = ops.get("all_reduce")
    count = coll.count_for(size, 4, ctx.world)
    case = driver.Case(coll, torch.float32, "sum", size, count, "torch")
    plan = driver.SweepPlan(
        collectives=["all_reduce"],
        dtypes=["fp32"],
        ops=["sum"],
        sizes=[size],
        iters=ctx.plan.allreduce_iters,
        warmup=WARMUP_ITERS,
        check=1,
        device=ctx.device.torch_device,
        backend=dist.get_backend(ctx.dist.group),
    )
    ctx.step(f"all_reduce {size} B")
    samples, wrong = driver.measure(case, True, plan, ctx.dist, ctx.progress)
    result.backend = f"torch ({plan.backend})"
    metrics.fill_timing(result, samples)
    algbw = coll.bytes(count, 4) / result.median_s
    factor = coll.bus_factor(ctx.world)
    result.bytes, result.bytes_per_s = float(coll.bytes(count, 4)), algbw
    result.check = {"wrong": wrong, "passed": wrong == 0, "reference": "exactly representable sums"}
    result.extra.update(
        algbw_gbps=algbw / 1e9, busbw_gbps=algbw * factor / 1e9, bus_factor=factor, wrong=wrong
    )
    if wrong:
        result.status = "check-failed"
        return ctx.finish(
            ctx.fail(result, f"{wrong} wrong elements after all_reduce on rank {ctx.rank}", unit="GB/s")
        )
    rule = ctx.rule("all_reduce", "fp32")
    basis, text = ctx.basis_figure(rule, "bandwidth") if rule else (None, "")
    ctx.judge(result, value=algbw * factor, unit="GB/s", rule=rule, basis=basis, basis_text=text, scale=1e9,
              reason=f"busbw over {ctx.world} ranks, {size} B in place",
              not_remeasured="a collective runs again only with every rank, which this rank alone cannot start")  # fmt: skip
    return ctx.finish(result)


def host_copy(ctx: CheckContext, direction: str):
    """h2d or d2h: a pinned host buffer to / from the device."""
    size = ctx.plan.host_copy_bytes
    title = "Host-to-device copy bandwidth" if direction == "h2d" else "Device-to-host copy bandwidth"
    result = ctx.record(direction, title, backend="torch copy_", shape={"bytes": size}, dtype="uint8")
    if ctx.kind != "cuda":
        return ctx.skip(result, f"{ctx.kind} device: host <-> device copies apply to GPUs only")
    device = torch.device(ctx.device.torch_device)
    host = torch.from_numpy(np.random.default_rng(7).integers(0, 256, size, dtype=np.uint8)).pin_memory()
    on_device = torch.empty(size, dtype=torch.uint8, device=device)
    if direction == "h2d":
        source, target = host, on_device
    else:
        on_device.copy_(host)
        source, target = on_device, torch.empty(size, dtype=torch.uint8).pin_memory()

    def fn():
        target.copy_(source, non_blocking=True)
        return target

    def differing_bytes(out, reference) -> float:
        timing.synchronize(ctx.device.torch_device)  # the copy was queued without waiting
        return float((out.cpu() != reference).sum())

    ctx.step(direction)
    against = checktime.Check(host, tolerance=0.0, rule="byte-for-byte equal", reference_kind="the source bytes",
                              error=differing_bytes, error_name="differing bytes")  # fmt: skip
    if not checktime.check(result, fn, against):
        return ctx.finish(ctx.fail(result, f"{direction} copy altered the data: {result.error}", unit="GB/s"))
    result.bytes = float(size)
    rule = ctx.rule(direction, "uint8")
    basis, text = ctx.basis_figure(rule, "bandwidth") if rule else (None, "")

    def time_copies():
        """Time the copy and return (bytes/s, basis, its text): the judge's re-measure too."""
        metrics.fill_timing(result, ctx.time(fn, flush=False))
        result.bytes_per_s = size / result.median_s  # no peak: the device's HBM figure is not the link's
        return result.bytes_per_s, basis, text

    time_copies()
    ctx.judge(result, value=result.bytes_per_s, unit="GB/s", rule=rule, basis=basis, basis_text=text, scale=1e9,
              reason="pinned host memory", remeasure=time_copies)  # fmt: skip
    return ctx.finish(result)


def run(ctx: CheckContext) -> list:
    return [all_reduce(ctx), host_copy(ctx, "h2d"), host_copy(ctx, "d2h")]
