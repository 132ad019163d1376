"""zhisuan.bench.dev.devicecheck, the GPU session's one call, in the parts that run without a GPU: it refuses
plainly without CUDA, its job list covers every benchmark the GPU issue names, and its Markdown
judges the targets from the results it is given (synthetic ones here)."""

import pytest
import torch

from zhisuan.bench.core import chips
from zhisuan.bench.core.results import Result
from zhisuan.bench.dev import devicecheck


def result(op, backend, shape, median_s, dtype="bf16", flops=None):
    flops = flops if flops is not None else 2.0 * shape.get("M", 1) * shape.get("N", 1) * shape.get("K", 1)
    return Result(kind="kernel", op=op, backend=backend, shape=shape, dtype=dtype, device="cuda:0",
                  device_name="NVIDIA H100 80GB HBM3", median_s=median_s, flops=flops,
                  flops_per_s=flops / median_s, check={"max_abs_err": 0.01, "tolerance": 0.05, "passed": True})  # fmt: skip


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_refuses_without_cuda(tmp_path, capsys):
    assert devicecheck.main(["--out", str(tmp_path)]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_jobs_cover_every_benchmark_of_the_gpu_issue():
    ops = {(op, tuple(dtypes)) for op, _, dtypes, _ in devicecheck.jobs(quick=False)}
    assert {("matmul", ("bf16",)), ("attention", ("bf16",)), ("attention-train", ("bf16",))} <= ops
    assert ("matmul", ("fp16", "fp8e4m3", "fp32")) in ops
    square = devicecheck.jobs(quick=False)[0][1]
    assert [s["M"] for s in square] == [1024, 2048, 4096, 8192, 16384]


def test_targets_are_judged_from_the_results():
    s8192 = {"M": 8192, "N": 8192, "K": 8192}
    s4096 = {"M": 4096, "N": 4096, "K": 4096}
    results = [
        result("matmul", "triton", s8192, 1.8e-3),  # 611 TFLOP/s: below the 700 target
        result("matmul", "torch", s8192, 1.7e-3),
        result("matmul", "cpp", s4096, 0.4e-3),
        result("matmul", "torch", s4096, 0.2e-3),  # ours at half cuBLAS's speed
    ]
    lines = devicecheck.target_lines(results)
    assert "- Triton matmul at 8192³ bf16: 611 TFLOP/s (MISSED; target 700 TFLOP/s)" in lines
    assert "- CUDA C++ matmul vs cuBLAS at 4096³: 0.5× (MISSED; target 0.6×)" in lines
    assert "- Triton attention forward+backward vs SDPA flash (worst shape): not measured" in lines
    markdown = devicecheck.render(results, chips.detect("cpu"), "3 passed", "exit 0: PASS", 12.0, ["--quick"])
    assert "exit 0: PASS" in markdown and "python -m zhisuan.bench.dev.devicecheck --quick" in markdown
    assert markdown.count("| matmul |") == 4
