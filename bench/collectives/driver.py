"""The per-size benchmark loop that every rank runs: allocate, warm up, time, check, gather.

For each collective, dtype, reduction op and size (and implementation, for all_reduce), and for
each placement (out-of-place, then in place where the collective has one), every rank:
  1. fills its send buffer with data for timing (check.fill_for_timing) and meets the others at a barrier;
  2. runs `warmup` untimed iterations, then `iters` timed ones, each timed on its own (host clock
     on CPU, with a device synchronisation after each call on other devices; CUDA events on GPU,
     with a host synchronisation after each under -z 1; under -G N the `iters` calls are captured
     once in a CUDA graph and each of N launches gives one sample, launch time / iters);
  3. refills the buffers with fresh check data `check` times, runs once, and counts wrong elements;
  4. sends its samples and count to rank 0 (over a gloo control group, so NCCL runs are not
     disturbed), which summarises, prints and writes the result.
Rank 0 decides the exit code and shares it, so every rank exits alike.

Progress (for the watchdog, bench/collectives/watchdog.py): `progress.step(label)` at each case and
placement, and `progress.enter()` / `progress.leave()` around every collective call, outside the
timed window, so a call that never returns is seen as such.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from zhisuan.bench.collectives import check, ops
from zhisuan.bench.collectives.summary import Report
from zhisuan.kernels.registry import dtype_name, parse_dtype


@dataclass
class SweepPlan:
    """Everything a rank needs to run the benchmark (JSON-serialisable: it travels to spawned ranks)."""

    collectives: list[str]
    dtypes: list[str]
    ops: list[str]
    sizes: list[int]
    iters: int = 20
    warmup: int = 5
    check: int = 1
    blocking: bool = False
    cudagraph: int = 0
    root: int = 0
    impls: list[str] = field(
        default_factory=lambda: ["torch"]
    )  # of collectives with a kernel_op, interleaved
    average: int = 1  # how ranks' times combine: 0 rank 0, 1 mean, 2 min, 3 max (nccl-tests' -a)
    device: str = "cpu"
    backend: str = "gloo"
    seed: int = 0
    timeout_s: float = 300.0
    bind: bool = True  # --nproc: each rank on its own CPUs
    min_busbw: float | None = None
    json_path: str | None = None
    run_id: str = ""


@dataclass
class RankContext:
    rank: int
    world: int
    group: object  # the process group the collectives run on
    control: object  # a gloo group for the harness's own messages
    device: torch.device


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "npu":
        torch.npu.synchronize(device)


def time_iterations(call: Callable[[], None], plan: SweepPlan, device: torch.device, progress) -> list[float]:
    """Seconds per iteration, one sample per iteration (or per graph launch under -G)."""
    if device.type == "cuda":
        return _time_cuda(call, plan, device, progress)
    samples = []
    clock = time.perf_counter
    host = device.type == "cpu"
    for _ in range(plan.iters):
        progress.enter()
        start = clock()
        call()
        if not host:
            _synchronize(device)
        samples.append(clock() - start)
        progress.leave()
    return samples


def _time_cuda(call: Callable[[], None], plan: SweepPlan, device: torch.device, progress) -> list[float]:
    def timed_pair():
        return torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    progress.enter()
    try:
        if plan.cudagraph:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                for _ in range(plan.iters):
                    call()
            samples = []
            for _ in range(plan.cudagraph):
                start, end = timed_pair()
                start.record()
                graph.replay()
                end.record()
                end.synchronize()
                samples.append(start.elapsed_time(end) / 1e3 / plan.iters)
            return samples
        events = [timed_pair() for _ in range(plan.iters)]
        for start, end in events:
            start.record()
            call()
            end.record()
            if plan.blocking:
                end.synchronize()
        torch.cuda.synchronize(device)
        return [start.elapsed_time(end) / 1e3 for start, end in events]
    finally:
        progress.leave()


@dataclass(frozen=True)
class Case:
    collective: ops.Collective
    dtype: torch.dtype
    op: str | None
    size: int  # requested bytes
    count: int  # elements (0: the size is too small for this many ranks)
    impl: str


def site_of(case: Case, plan: SweepPlan, ctx: RankContext) -> ops.Site:
    return ops.Site(
        n=ctx.world,
        rank=ctx.rank,
        op=case.op,
        root=plan.root,
        count=case.count,
        group=ctx.group,
        impl=case.impl,
    )


def measure(
    case: Case, in_place: bool, plan: SweepPlan, ctx: RankContext, progress
) -> tuple[list[float], int]:
    """This rank's samples and wrong-element count for one case and placement."""
    coll, dtype, op = case.collective, case.dtype, case.op
    site = site_of(case, plan, ctx)
    bufs = ops.allocate(coll, site, dtype, ctx.device, in_place)
    call = coll.call(bufs, site)

    def untimed_call():
        progress.enter()
        call()
        _synchronize(ctx.device)
        progress.leave()

    check.fill_for_timing(bufs.send, check.pattern_for(dtype, op, ctx.world, plan.seed), ctx.rank)
    dist.barrier(group=ctx.control)
    for _ in range(plan.warmup):
        untimed_call()
    samples = time_iterations(call, plan, ctx.device, progress)
    wrong = 0
    for attempt in range(plan.check):
        pattern = check.pattern_for(dtype, op, ctx.world, plan.seed + 1 + attempt)
        # The sentinel first, then the send data: where the buffers overlap (in place) the data wins.
        check.fill_sentinel(bufs.recv)
        check.fill(bufs.send, pattern, ctx.rank)
        untimed_call()
        wrong += check.count_wrong(coll, bufs.recv, pattern, site)
    return samples, wrong


def validate_world(plan: SweepPlan, n: int) -> None:
    """What can only be checked once the number of ranks is known (ValueError otherwise)."""
    for name in plan.collectives:
        coll = ops.get(name)
        if n < coll.min_ranks:
            raise ValueError(f"{coll.name} needs at least {coll.min_ranks} ranks, this run has {n}")
        if coll.rooted and not 0 <= plan.root < n:
            raise ValueError(f"--root {plan.root} is not a rank of this run (0..{n - 1})")


def cases(plan: SweepPlan, n: int):
    """The cases in run order: the implementations of one size back to back, for a fair comparison."""
    for name in plan.collectives:
        coll = ops.get(name)
        impls = plan.impls if coll.kernel_op else ["torch"]
        for name_of_dtype in plan.dtypes:
            dtype = parse_dtype(name_of_dtype)
            itemsize = torch.tensor([], dtype=dtype).element_size()
            for op in plan.ops if coll.reduces else [None]:
                for size in plan.sizes:
                    for impl in impls:
                        yield Case(coll, dtype, op, size, coll.count_for(size, itemsize, n), impl)


def run(plan: SweepPlan, ctx: RankContext, progress) -> int:
    """Run the whole plan on this rank; returns the exit code (the same on every rank)."""
    report = Report(plan, ctx.world, ctx.device) if ctx.rank == 0 else None
    for case in cases(plan, ctx.world):
        if case.count == 0:
            if report:
                report.skipped(case)
            continue
        rows = []
        for in_place in (False, True) if case.collective.in_place else (False,):
            placement = "in-place" if in_place else "out-of-place"
            progress.step(
                f"{case.collective.name} {case.size} B {dtype_name(case.dtype)} {case.op or ''} {placement} "
                f"({case.impl})"
            )
            samples, wrong = measure(case, in_place, plan, ctx, progress)
            gathered = [None] * ctx.world if ctx.rank == 0 else None
            dist.gather_object(
                (samples, wrong), gathered, dst=dist.get_global_rank(ctx.control, 0), group=ctx.control
            )
            if report:
                rows.append(report.summarize(case, in_place, gathered))
        if report:
            report.emit(rows)
    verdict = [report.finish() if report else None]
    dist.broadcast_object_list(verdict, src=dist.get_global_rank(ctx.control, 0), group=ctx.control)
    return verdict[0]
