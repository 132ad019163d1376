"""GPU paths of the collectives: the ipc and cupy-nccl all_reduce backends and `zhisuan collective`
on CUDA (events, -z 1, -G). Without a CUDA device only the honest unavailability is checked."""

import pytest
import torch
import torch.distributed as dist

from zhisuan import kernels
from zhisuan.bench.collectives import check, launch, ops
from zhisuan.bench.collectives.__main__ import main as collective_main
from zhisuan.kernels.allreduce import ipc

gpu = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("name", ["cupy-nccl", "ipc"])
def test_gpu_backends_say_why_they_are_unavailable(name):
    status = kernels.backends("all_reduce")[name]
    assert status.devices == ("cuda",)
    if not torch.cuda.is_available():
        assert not status.available and "no CUDA device" in status.reason


@pytest.fixture
def nccl_group():
    dist.init_process_group("nccl", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@gpu
@needs_cuda
def test_cupy_nccl_all_reduce_on_one_rank(nccl_group):
    pytest.importorskip("cupy", reason="cupy is not installed")
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.int32):
        for op in ("sum", "max", "min", "avg"):
            x = torch.randint(-50, 50, (1025,), device="cuda").to(dtype)
            y = x.clone()
            kernels.all_reduce(y, op=op, backend="cupy-nccl")
            torch.cuda.synchronize()
            assert torch.equal(x, y), (dtype, op)  # one rank: every reduction is the identity


@gpu
@needs_cuda
@pytest.mark.parametrize("extra", [[], ["-z", "1"], ["-G", "3"]])
def test_collective_on_one_gpu(extra, tmp_path, capsys):
    argv = [
        "all_reduce",
        "all_gather",
        "-b",
        "8",
        "-e",
        "1M",
        "-f",
        "64",
        "-n",
        "5",
        "-w",
        "2",
        "--device",
        "cuda",
    ]
    assert collective_main([*argv, *extra, "--json", str(tmp_path / "r.jsonl")]) == 0
    assert "# Out of bounds values : 0 OK" in capsys.readouterr().out


def _ipc_worker(ctx):
    # Several processes on one GPU: NCCL refuses that, CUDA IPC allows it (the group here is gloo).
    torch.cuda.set_device(0)
    n = ctx.world
    coll = ops.get("all_reduce")
    failures = []
    for dtype in ipc.DTYPES:
        size = dtype.itemsize
        two_shot = ipc.ONE_SHOT_MAX_BYTES // size + 5
        for op in ("sum", "max", "min", "avg"):
            for count in (1, 7, 1025, two_shot, ipc.HALF_BYTES // size):
                pattern = check.pattern_for(dtype, op, n, seed=count)
                host = torch.empty(count, dtype=dtype)
                check.fill(host, pattern, ctx.rank)
                t = host.cuda()
                kernels.all_reduce(t, op=op, backend="ipc", group=ctx.group)
                torch.cuda.synchronize()
                site = ops.Site(n=n, rank=ctx.rank, op=op, count=count, impl="ipc")
                wrong = check.count_wrong(coll, t, pattern, site)
                if wrong:
                    failures.append(f"{dtype} {op} {count}: {wrong} wrong")
    assert not failures, "\n".join(failures)


@gpu
@needs_cuda
@pytest.mark.parametrize("n", [2, 3, 4])
def test_ipc_all_reduce_with_processes_sharing_one_gpu(n):
    launch.run_function(_ipc_worker, n)
