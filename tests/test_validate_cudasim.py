"""The numba.cuda STREAM kernels under numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1), in a
subprocess (the simulator must be chosen before numba.cuda is imported). Grids smaller than the
arrays, so the grid-stride loops are exercised. What this cannot show: speed, or the launch on a
torch stream; those run only on a GPU."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from zhisuan.bench.validate import stream_gpu

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from numba import config, cuda
    from zhisuan.bench.validate import stream_gpu

    assert config.ENABLE_CUDASIM and cuda.is_available()  # the simulator stands in for the GPU
    s = 3.0
    for n in (1, 7, 97):
        rng = np.random.default_rng(n)
        a, b, c = (rng.random(n) + 1.0 for _ in range(3))
        da, db, dc = (cuda.to_device(x) for x in (a, b, c))
        for name in ("copy", "scale", "add", "triad"):
            stream_gpu.launch(name, da, db, dc, s, blocks=2, threads=16)
            if name == "copy":
                c = a.copy()
                got, want = dc.copy_to_host(), c
            elif name == "scale":
                b = s * c
                got, want = db.copy_to_host(), b
            elif name == "add":
                c = a + b
                got, want = dc.copy_to_host(), c
            else:
                a = b + s * c
                got, want = da.copy_to_host(), a
            err = np.max(np.abs(got - want) / np.abs(want))
            assert err <= (2.0**-52 if name == "triad" else 0.0), (n, name, err)
    assert stream_gpu.toolchain_missing() is None

    class Broken:  # numba-cuda 0.30.4 with NumPy 2.5 failed like this at the first compile on an H200
        def __getitem__(self, launch_config):
            raise AttributeError("module 'numpy' has no attribute 'row_stack'")

    stream_gpu.KERNELS["copy"] = Broken()
    why = stream_gpu.toolchain_missing()
    assert why and "cannot compile and launch" in why and "row_stack" in why, why
    print("ok")
    """
)


def test_stream_kernels_under_the_cuda_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")


def test_grid_size():
    assert stream_gpu.blocks_for(1, 132) == 1
    assert stream_gpu.blocks_for(1000, None) == 4
    assert stream_gpu.blocks_for(1 << 27, 132) == 132 * stream_gpu.BLOCKS_PER_SM


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_stream_check_on_a_real_gpu(monkeypatch):
    from zhisuan.bench.core import chips
    from zhisuan.bench.validate import stream
    from zhisuan.bench.validate.context import CheckContext
    from zhisuan.bench.validate.levels import TEST_SIZES_ENV, plan_for
    from zhisuan.bench.validate.thresholds import load

    # Where numba.cuda cannot run (e.g. numba 0.68.0 with NumPy 2.5), STREAM runs through torch.
    backend = "torch" if stream_gpu.toolchain_missing() else "numba.cuda"
    monkeypatch.setenv(TEST_SIZES_ENV, "tiny")
    ctx = CheckContext(
        device=chips.detect("cuda"), plan=plan_for("quick", "cuda"), thresholds=load(), run_id="t", env={}
    )
    records = stream.run(ctx)
    assert [(r.op, r.backend) for r in records] == [(f"stream-{k}", backend) for k in stream.KERNELS]
    for r in records:
        # A SKIP record has no check at all: say why instead of failing on a missing key.
        assert r.extra.get("verdict") != "SKIP", f"{r.op} skipped: {r.extra.get('reason')}"
        assert r.check.get("passed") and r.bytes_per_s > 0, r.extra
