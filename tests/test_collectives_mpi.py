"""--impl mpi (MPI_Allreduce through mpi4py) beside gloo and shm on ranks started by mpirun, checked
exactly in both placements; its honest unavailability without mpi4py or without mpirun; and the
out-of-place form of all_reduce (`out=`), native for shm and mpi, a copy first for the others."""

import os
import shutil
import subprocess
import sys

import pytest
import torch

from zhisuan import kernels
from zhisuan.bench.collectives import launch
from zhisuan.bench.collectives.__main__ import main as collective_main
from zhisuan.bench.core.result_files import read_results
from zhisuan.kernels._ext import cpu_ext_missing
from zhisuan.kernels.allreduce import bind, check_out, mpi

try:
    import mpi4py  # noqa: F401  (imports no MPI library: mpi4py.MPI would)

    MPI_MISSING = None if shutil.which("mpirun") else "mpirun is not on PATH (apt-get install openmpi-bin)"
except ImportError:
    MPI_MISSING = "mpi4py is not installed (pip install mpi4py over an MPI library)"
needs_mpi = pytest.mark.skipif(MPI_MISSING is not None, reason=str(MPI_MISSING))
needs_shm = pytest.mark.skipif(cpu_ext_missing() is not None, reason=f"{cpu_ext_missing()}")


@needs_mpi
@needs_shm
def test_mpi_beside_gloo_and_shm_under_mpirun(tmp_path):
    path = tmp_path / "m.jsonl"
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    proc = subprocess.run(
        ["mpirun", "-np", "2", "--oversubscribe", "-x", "MASTER_ADDR=127.0.0.1", "-x", f"MASTER_PORT={launch.free_port()}",
         sys.executable, "-m", "zhisuan.bench", "collective", "all_reduce", "--impl", "torch,shm,mpi",
         "-d", "fp32,int32", "-o", "sum,max,avg", "-b", "4", "-e", "4100", "-f", "1025", "-n", "2", "-w", "1",
         "--json", str(path)],
        capture_output=True, text=True, timeout=240, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.strip() and not line.startswith("#")]
    # 2 dtypes x 3 ops x 2 sizes x 3 implementations, both placements checked exactly
    assert len(rows) == 36 and {r[13] for r in rows} == {"torch", "shm", "mpi"}
    assert all(r[8] == "0" and r[12] == "0" for r in rows)
    results = read_results(path)
    assert {r.backend for r in results} == {"gloo", "shm", "mpi"} and all(r.status == "ok" for r in results)
    assert all(r.shape["ranks"] == 2 for r in results)


def test_mpi_is_unavailable_with_the_reason(monkeypatch):
    for name in mpi.LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    status = kernels.backends("all_reduce")["mpi"]
    assert not status.available
    if MPI_MISSING and "mpi4py" in MPI_MISSING:
        assert "mpi4py is not installed" in status.reason
    else:
        assert status.reason == mpi.NEEDS_MPIRUN
    monkeypatch.setattr(mpi.importlib.util, "find_spec", lambda name: None)
    assert "mpi4py is not installed (pip install mpi4py" in kernels.backends("all_reduce")["mpi"].reason


def test_nproc_with_mpi_is_refused_in_one_line(capsys, tmp_path):
    assert collective_main(["--impl", "mpi", "--nproc", "2", "--json", str(tmp_path / "r.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "zhisuan: error: --impl mpi with --nproc: the mpi all_reduce needs ranks started by mpirun"
    )


def test_out_must_fit_t():
    t = torch.randn(7)
    check_out(t, torch.empty(7))
    for bad, message in (
        (torch.empty(8), "out must match t"),
        (torch.empty(7, dtype=torch.float64), "out must match t"),
        (torch.empty(14)[::2], "out must be contiguous"),
        (t, "out overlaps t"),
    ):
        with pytest.raises(ValueError, match=message):
            check_out(t, bad)


def _out_of_place_worker(ctx):
    import torch.distributed as dist

    n, rank = ctx.world, ctx.rank
    backends = ["torch"] + ([] if cpu_ext_missing() else ["shm"])
    gen = torch.Generator().manual_seed(7)
    for count in (1, 7, 97, 1025, (1 << 18) + 3):
        inputs = [torch.randint(-1000, 1000, (count,), generator=gen).float() for _ in range(n)]
        for name in backends:
            for op, want in (("sum", sum(inputs)), ("max", torch.stack(inputs).max(0).values)):
                t = inputs[rank].clone()
                out = torch.full_like(t, float("nan"))
                assert kernels.all_reduce(t, op, backend=name, out=out) is out
                assert torch.equal(out, want), (name, op, count)
                assert torch.equal(t, inputs[rank])  # the input is left alone
    # shm writes straight into out; torch has no out-of-place call: a copy, then in place
    t, out = torch.ones(5), torch.empty(5)
    assert bind(kernels.registry.get("all_reduce", "torch"), t, op="sum", out=out).__name__ == "copy_first"
    if "shm" in backends:
        call = bind(kernels.registry.get("all_reduce", "shm"), t, op="sum", out=out)
        assert call.buffers == (t, out)
        for _ in range(3):  # a bound call runs again and again on the same buffers
            call()
            assert out.eq(n).all() and t.eq(1).all()
    dist.barrier()


def test_out_of_place_all_reduce_leaves_its_input_and_matches():
    launch.run_function(_out_of_place_worker, 2)
