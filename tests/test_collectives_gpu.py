"""GPU paths of the collectives: the cupy-nccl all_reduce backend and `zhisuan collective` on CUDA
(events, -z 1, -G). Without a CUDA device only the honest unavailability is checked."""

import pytest
import torch
import torch.distributed as dist

import kernels
from bench.collectives.__main__ import main as collective_main

gpu = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_cupy_nccl_says_why_it_is_unavailable():
    status = kernels.backends("all_reduce")["cupy-nccl"]
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
