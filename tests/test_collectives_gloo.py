"""Every collective, dtype and op over gloo with 2, 3 and 4 local processes, odd counts, both
placements, checked exactly; then the full driver (gather to rank 0, JSON Lines, exit code) and a
corrupting all_reduce backend that the check must catch. One process group per rank count."""

import json

import pytest
import torch
import torch.distributed as dist

from zhisuan import kernels
from zhisuan.bench.collectives import driver, launch, ops, watchdog
from zhisuan.bench.collectives.driver import Case, SweepPlan
from zhisuan.bench.core.result_files import read_results
from zhisuan.kernels.registry import parse_dtype

DTYPES = ("fp32", "fp16", "bf16", "int32")
COUNTS = (1, 7, 1025)  # per rank


def _corrupting_all_reduce(t, *, op, group=None):
    """torch's all_reduce, then one element off by one on rank 1: what the check must see."""
    kernels.registry.get("all_reduce", "torch").fn(t, op=op, group=group)
    if dist.get_rank(group) == 1:
        t[t.numel() // 2] += 1


def _every_case(ctx, tmp, with_driver):
    n = ctx.world
    plan = SweepPlan(
        collectives=[], dtypes=[], ops=[], sizes=[], iters=0, warmup=0, check=1, root=n - 1, seed=4242
    )
    failures = []

    def run(coll, dtype, op, count, in_place, impl="torch"):
        case = Case(coll, dtype, op, count * dtype.itemsize, count, impl)
        _, wrong = driver.measure(case, in_place, plan, ctx, watchdog.Progress())  # iters=0: only the check
        if wrong:
            failures.append(f"{coll.name} {dtype} {op} count={count} in_place={in_place}: {wrong} wrong")
        return wrong

    # With 2 ranks: every collective x dtype x op x count x placement. With more: every collective x
    # dtype x placement, at one op and one count each, rotating so every op and count still comes up.
    rotation = 0
    for coll in ops.COLLECTIVES.values():
        placements = (False, True) if coll.in_place else (False,)
        for name in DTYPES:
            dtype = parse_dtype(name)
            reductions = ops.REDUCE_OPS if coll.reduces else (None,)
            for op in reductions if n == 2 else (reductions[rotation % len(reductions)],):
                rotation += 1
                for per_rank in COUNTS if n == 2 else (COUNTS[rotation % 3],):
                    for in_place in placements:
                        run(coll, dtype, op, per_rank * n if coll.split else per_rank, in_place)
        # A large odd count once per collective: 1M+3, or about 1M in all split into odd slices.
        big = ((1 << 20) // n + 3) * n if coll.split else (1 << 20) + 3
        run(coll, torch.float32, "sum" if coll.reduces else None, big, placements[-1])
    assert not failures, "\n".join(failures)

    # The check catches a corrupted element on rank 1, in both placements, and counts it once.
    kernels.register("all_reduce", "corrupting", devices=("cpu",), dtypes=(torch.float32,))(
        _corrupting_all_reduce
    )
    for in_place in (False, True):
        wrong = run(ops.get("all_reduce"), torch.float32, "sum", 1025, in_place, impl="corrupting")
        assert wrong == (1 if ctx.rank == 1 else 0)
    failures.clear()

    if not with_driver:
        return
    # The whole driver: rank 0 gathers and writes one file; every rank gets the same exit code.
    good = SweepPlan(["all_reduce", "all_gather", "sendrecv"], ["fp32"], ["sum"], [8, 4096], iters=3, warmup=1,
                check=1, seed=7, json_path=str(tmp / f"good{n}.jsonl"), run_id="t")  # fmt: skip
    assert driver.run(good, ctx, watchdog.Progress()) == 0
    bad = SweepPlan(["all_reduce"], ["fp32"], ["sum"], [4096], iters=2, warmup=0, check=1, seed=7,
               impls=["torch", "corrupting"], json_path=str(tmp / f"bad{n}.jsonl"), run_id="t")  # fmt: skip
    assert driver.run(bad, ctx, watchdog.Progress()) == 1


@pytest.mark.parametrize("n", [2, 3, 4])
def test_every_collective_dtype_and_op(n, tmp_path):
    # The full driver runs once, with 3 ranks: a count that does not divide every size.
    launch.run_function(_every_case, n, tmp_path, n == 3)
    if n == 3:
        _check_driver_files(tmp_path, n)


def _check_driver_files(tmp_path, n):
    results = read_results(tmp_path / f"good{n}.jsonl")
    # 2 sizes x 2 placements (sendrecv: out-of-place only); all_gather skips 8 bytes (2 < 3 elements)
    assert sorted(r.op for r in results) == ["all_gather"] * 2 + ["all_reduce"] * 4 + ["sendrecv"] * 2
    for r in results:
        assert r.kind == "collective" and r.backend == "gloo" and r.status == "ok" and r.check["wrong"] == 0
        assert r.shape["ranks"] == n and len(r.samples_s) == 3 and len(r.extra["per_rank"]) == n
        factor = ops.get(r.op).bus_factor(n)
        assert r.extra["busbw"] == pytest.approx(r.extra["algbw"] * factor)
        assert r.extra["algbw"] == pytest.approx(r.shape["bytes"] / r.extra["time_s"])
        assert 0 <= r.extra["slowest_rank"] < n and r.extra["p50_s"] <= r.extra["p95_s"] <= r.extra["max_s"]
    gather_4k = next(r for r in results if r.op == "all_gather" and r.shape["bytes"] > 8)
    assert gather_4k.shape["count"] == 1024 - 1024 % n  # rounded down to a multiple of n

    bad = [json.loads(line) for line in (tmp_path / f"bad{n}.jsonl").read_text().splitlines()]
    assert [(r["backend"], r["status"]) for r in bad] == [("gloo", "ok")] * 2 + [
        ("corrupting", "check-failed")
    ] * 2
    assert all(r["check"]["wrong"] == 1 for r in bad if r["backend"] == "corrupting")
