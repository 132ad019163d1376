"""The shm all-reduce out of place against in place, paired: the two calls alternate, so drift and a
neighbour's load hit both alike, and the figure is the median of the per-pair time ratios.

    python -m zhisuan.bench.dev.shm_placement --sizes 512K,2M,8M,32M --pairs 60

Two local ranks (one CPU each where there are two), fp32 sum. Both placements are checked against
the exact sum before anything is timed. For issue 14's goal (out of place within 1.2x of in place);
docs/benchmarks/cpu-allreduce-mpi.md has what it measured.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from zhisuan.bench.collectives import launch
from zhisuan.bench.collectives.sizes import parse_size
from zhisuan.kernels.allreduce.shm import prepare_shm

WARMUP_PAIRS = 5


def _check(ctx, placement: str, n: int) -> None:
    """Both ranks' inputs are known to every rank (seeded by rank): the exact fp32 sum of two values."""
    mine = torch.rand(n, generator=torch.Generator().manual_seed(ctx.rank))
    want = sum(torch.rand(n, generator=torch.Generator().manual_seed(r)) for r in range(ctx.world))
    out = torch.full((n,), float("nan")) if placement == "out of place" else None  # NaN: unwritten shows
    prepare_shm(mine, op="sum", out=out)()
    got = mine if out is None else out
    if not torch.equal(got, want):
        raise AssertionError(f"{placement}: {int((got != want).sum())} of {n} elements wrong")


def _pairs(ctx, sizes: list[int], pairs: int) -> None:
    cpus = launch.cpu_sets(ctx.world)
    if cpus:
        os.sched_setaffinity(0, cpus[ctx.rank])
    for nbytes in sizes:
        n = max(1, nbytes // 4)
        for placement in ("in place", "out of place"):
            _check(ctx, placement, n)
        a, b, out = torch.rand(n), torch.rand(n), torch.empty(n)
        in_place, out_of_place = prepare_shm(a, op="sum"), prepare_shm(b, op="sum", out=out)
        ratios, times_in, times_out = [], [], []
        for i in range(WARMUP_PAIRS + pairs):
            t0 = time.perf_counter()
            in_place()
            t1 = time.perf_counter()
            out_of_place()
            t2 = time.perf_counter()
            if i >= WARMUP_PAIRS:
                times_in.append(t1 - t0)
                times_out.append(t2 - t1)
                ratios.append((t2 - t1) / (t1 - t0))
        if ctx.rank == 0:
            q = statistics.quantiles(ratios, n=4)
            print(
                f"{nbytes:>10} B  in place {1e6 * statistics.median(times_in):9.1f} us  out of place "
                f"{1e6 * statistics.median(times_out):9.1f} us  out/in {statistics.median(ratios):.2f} "
                f"(quartiles {q[0]:.2f}-{q[2]:.2f}), checked exact",
                flush=True,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="512K,2M,8M,32M", help="message sizes in bytes, comma-separated")
    parser.add_argument("--pairs", type=int, default=60, help="timed (in place, out of place) pairs per size")
    args = parser.parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    launch.run_function(_pairs, 2, sizes, args.pairs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
