"""The shared-memory all-reduce (zhisuan.kernels._C, backend "shm"): its reduction kernels on every ISA this
CPU runs, its segment on one process, and all-reduce across 2, 3 and 4 local processes (every dtype
and op, odd and multi-chunk counts, in and out of place, determinism, argument mismatch, a missing
rank), leaving /dev/shm clean."""

import os
import time

import pytest
import torch

from zhisuan import kernels
from zhisuan.bench.collectives import driver, launch, ops, watchdog
from zhisuan.bench.collectives.driver import Case, SweepPlan
from zhisuan.kernels._ext import cpu_ext_missing
from zhisuan.kernels.allreduce import shm
from zhisuan.kernels.registry import dtype_name

pytestmark = pytest.mark.skipif(cpu_ext_missing() is not None, reason=f"{cpu_ext_missing()}")

DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.int32)
OPS = ("sum", "max", "min", "avg")
SHM_DIR = "/dev/shm"


def _C():
    from zhisuan.kernels._ext import cpu_ext

    return cpu_ext()


def _isas():
    return _C().isas() if cpu_ext_missing() is None else []


def _dtype(dtype: torch.dtype):
    return getattr(_C().DType, dtype_name(dtype))


def _op(op: str):
    return getattr(_C().ReduceOp, op)


def _segments() -> set[str]:
    return {name for name in os.listdir(SHM_DIR) if name.startswith("zhisuan-allreduce-")}


def _reference(srcs: list[torch.Tensor], op: str) -> torch.Tensor:
    """What the kernel must produce, bit for bit: rank order, fp32 accumulation, one rounding."""
    if srcs[0].dtype == torch.int32:
        acc = srcs[0].to(torch.int64)
        for s in srcs[1:]:
            acc = {"max": torch.maximum, "min": torch.minimum}.get(op, torch.add)(acc, s.to(torch.int64))
        acc = (acc + 2**31) % 2**32 - 2**31  # the sum wraps around like int32 arithmetic (as torch's)
        if op == "avg":
            acc = torch.div(acc, len(srcs), rounding_mode="floor")
        return acc.to(torch.int32)
    acc = srcs[0].float()
    for s in srcs[1:]:
        if op == "max":
            acc = torch.maximum(acc, s.float())  # propagates NaN like the kernel
        elif op == "min":
            acc = torch.minimum(acc, s.float())
        else:
            acc = acc + s.float()
    if op == "avg":
        acc = acc / len(srcs)
    return acc.to(srcs[0].dtype)


def _random(dtype: torch.dtype, n: int, gen: torch.Generator) -> torch.Tensor:
    if dtype == torch.int32:
        return torch.randint(-(2**31), 2**31 - 1, (n,), dtype=torch.int32, generator=gen)
    return (torch.randn(n, generator=gen, dtype=torch.float64) * 100).to(dtype)


@pytest.mark.parametrize("isa", _isas())
@pytest.mark.parametrize("dtype", DTYPES)
def test_reduction_kernels_match_the_reference_bit_for_bit(isa, dtype):
    gen = torch.Generator().manual_seed(5)
    for op in OPS:
        for count in (1, 7, 15, 16, 17, 33, 1025, 4099):
            for nsrc in (1, 2, 3, 5):
                srcs = [_random(dtype, count, gen) for _ in range(nsrc)]
                if dtype != torch.int32 and count > 7:
                    srcs[-1][3] = float("nan")  # max/min/sum must all propagate it
                dst = torch.empty(count, dtype=dtype)
                _C().shm_reduce(
                    isa, _dtype(dtype), _op(op), [s.data_ptr() for s in srcs], dst.data_ptr(), count
                )
                want = _reference(srcs, op)
                same = (dst == want) | (dst.isnan() & want.isnan()) if dtype != torch.int32 else dst == want
                assert same.all(), f"{isa} {dtype} {op} count={count} nsrc={nsrc}"
    # in place: the destination is one of the sources
    a, b = _random(dtype, 1025, gen), _random(dtype, 1025, gen)
    want = _reference([a, b], "sum")
    _C().shm_reduce(isa, _dtype(dtype), _op("sum"), [a.data_ptr(), b.data_ptr()], a.data_ptr(), 1025)
    assert torch.equal(a, want) or (dtype != torch.int32 and torch.equal(a.isnan(), want.isnan()))


def test_bf16_and_fp16_ties_round_to_even_like_torch():
    # pairs whose fp32 sum falls exactly halfway between two neighbours of the 16-bit format
    a = torch.tensor([1.0, 1 + 2**-7, -1.0, 1 + 2**-7, 256.0, 1.0], dtype=torch.float64)
    b = torch.tensor([2**-8, 2**-8, -(2**-8), -(2**-8), 1.0, 2**-11], dtype=torch.float64)
    for dtype in (torch.bfloat16, torch.float16):
        x, y = a.to(dtype), b.to(dtype)
        want = _reference([x, y], "sum")
        for isa in _isas():
            dst = torch.empty_like(x)
            _C().shm_reduce(
                isa, _dtype(dtype), _op("sum"), [x.data_ptr(), y.data_ptr()], dst.data_ptr(), x.numel()
            )
            assert torch.equal(dst, want), (isa, dtype, dst, want)


def test_segment_on_one_process_and_its_errors():
    C = _C()
    before = _segments()
    name = f"/zhisuan-allreduce-test-{os.getpid()}"
    comm = C.ShmAllReduce(name, 0, 1, True, 4096, 1024, 5.0)
    assert os.path.exists(SHM_DIR + name) and comm.segment_bytes >= 2 * 4096
    comm.wait_opened_and_unlink()
    assert not os.path.exists(SHM_DIR + name)  # gone as soon as every rank mapped it
    x, y = torch.arange(10000, dtype=torch.float32), torch.empty(10000)
    fp32, total = _dtype(torch.float32), _op("sum")
    comm.all_reduce(x.data_ptr(), y.data_ptr(), 10000, fp32, total)  # world 1: a copy, through any chunking
    assert torch.equal(x, y)
    with pytest.raises(ValueError, match="unknown dtype 7"):  # pybind11 lets Python make DType(7)
        comm.all_reduce(x.data_ptr(), y.data_ptr(), 1, C.DType(7), total)
    with pytest.raises(ValueError, match="unknown op 9"):
        C.shm_reduce("portable", fp32, C.ReduceOp(9), [x.data_ptr()], y.data_ptr(), 1)
    comm.close()
    with pytest.raises(RuntimeError, match="is closed"):
        comm.all_reduce(x.data_ptr(), y.data_ptr(), 1, fp32, total)
    with pytest.raises(ValueError, match="segment name"):
        C.ShmAllReduce("no-slash", 0, 2, True, 4096, 1024, 5.0)
    with pytest.raises(ValueError, match="rank 2 outside"):
        C.ShmAllReduce("/zhisuan-allreduce-x", 2, 2, True, 4096, 1024, 5.0)
    with pytest.raises(RuntimeError, match="shm_open"):
        C.ShmAllReduce("/zhisuan-allreduce-does-not-exist", 1, 2, False, 4096, 1024, 5.0)
    with pytest.raises(TypeError):  # the dtype and op are enum members, never bare codes
        C.shm_reduce("portable", 0, total, [x.data_ptr()], y.data_ptr(), 1)
    with pytest.raises(TypeError):
        C.shm_reduce("portable", fp32, 0, [x.data_ptr()], y.data_ptr(), 1)
    with pytest.raises(ValueError, match="unknown ISA 'scalar'"):
        C.shm_reduce("scalar", fp32, total, [x.data_ptr()], y.data_ptr(), 1)
    assert _segments() == before


def test_backend_is_registered_with_its_reason():
    status = kernels.backends("all_reduce")["shm"]
    assert status.devices == ("cpu",) and set(status.dtypes) == {"fp32", "fp16", "bf16", "int32"}
    assert not status.available and "no process group" in status.reason


# ---- across processes ------------------------------------------------------------------------


def _shm_worker(ctx):
    import torch.distributed as dist

    n, rank = ctx.world, ctx.rank
    plan = SweepPlan(collectives=[], dtypes=[], ops=[], sizes=[], iters=0, warmup=0, check=1, seed=99)
    coll = ops.get("all_reduce")
    # Odd counts for every dtype, op and placement; in place (the kernel's own form), a count that
    # takes several chunks (two-shot ones, then a 5-element one-shot tail) and 1M+3 for every dtype
    # with sum, and 1M+3 for fp32 with every op.
    large = (2 * (shm.SLOT_BYTES // 4) + 5, (1 << 20) + 3)
    failures = []
    for dtype in DTYPES:
        for op in OPS:
            big = large if op == "sum" else large[1:] if dtype == torch.float32 else ()
            for count in (1, 7, 1025, *big):
                for in_place in (False, True) if count < 2000 else (True,):
                    case = Case(coll, dtype, op, count * dtype.itemsize, count, "shm")
                    _, wrong = driver.measure(case, in_place, plan, ctx, watchdog.Progress())
                    if wrong:
                        failures.append(f"{dtype} {op} {count} in_place={in_place}: {wrong} wrong")
    assert not failures, "\n".join(failures)

    # The name left /dev/shm as soon as every rank had mapped the segment.
    assert not os.path.exists(SHM_DIR + shm.communicator().name)

    # Random (non-integer) data: every rank gets the same bits, those of the in-order fp32 sum.
    for dtype in DTYPES:
        gen = torch.Generator().manual_seed(1000)
        inputs = [_random(dtype, 70001, gen) for _ in range(n)]
        t = inputs[rank].clone()
        kernels.all_reduce(t, op="sum", backend="shm")
        assert torch.equal(t, _reference(inputs, "sum")), dtype

    # Ranks that disagree on the count: every rank raises, naming them; the next call works.
    bad = torch.ones(5 + (rank == n - 1))
    with pytest.raises(RuntimeError, match=f"rank {n - 1} has count=6"):
        kernels.all_reduce(bad, backend="shm")
    t = torch.ones(3)
    kernels.all_reduce(t, backend="shm")
    assert t.eq(n).all()

    # A rank that never comes: rank 0 gives up after the timeout, naming the missing ranks.
    shm.set_timeout(1.0)
    if rank == 0:
        start = time.monotonic()
        missing = ", ".join(str(r) for r in range(1, n))
        with pytest.raises(RuntimeError, match=f"for rank\\(s\\) {missing}, which never arrived"):
            kernels.all_reduce(torch.ones(4), backend="shm")
        assert time.monotonic() - start < 10
    else:
        shm.release()  # the others drop the segment rank 0 gave up on
    shm.set_timeout(shm.DEFAULT_TIMEOUT_S)
    dist.barrier(group=ctx.control)
    t = torch.ones(4)
    kernels.all_reduce(t, backend="shm")
    assert t.eq(n).all()


@pytest.mark.parametrize("n", [2, 3, 4])
def test_all_reduce_across_processes(n):
    before = _segments()
    launch.run_function(_shm_worker, n)
    assert _segments() == before
