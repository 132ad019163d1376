"""The CUDA C++ tensor-core matmul (csrc/cuda/matmul.cu, zhisuan.kernels.matmul.cuda).

Without a GPU: the operand-layout rules and argument checks of the extension (they run before any
CUDA call) and the aligned copies the Python layer makes. On the GPU (marked gpu): products
against float64, within 4x torch's (cuBLAS) error in the same precision, on awkward shapes,
every operand layout, and a non-default stream.
"""

from __future__ import annotations

import pytest
import torch

from zhisuan.bench.workloads.base import max_abs_error, tolerance
from zhisuan.kernels._ext import cuda_ext_missing
from zhisuan.kernels.matmul import cuda as cm

needs_ext = pytest.mark.skipif(
    cuda_ext_missing() is not None, reason=f"zhisuan.kernels._cuda: {cuda_ext_missing()}"
)


def problem(rows, cols, stride_row, stride_col, ptr=4096, element_size=2) -> str:
    from zhisuan.kernels._ext import cuda_ext

    return cuda_ext().gemm_operand_problem(ptr, rows, cols, stride_row, stride_col, element_size)


@needs_ext
def test_operand_layout_rules():
    assert problem(7, 96, 96, 1) == ""  # row-major, 192-byte rows
    assert problem(96, 7, 1, 96) == ""  # column-major (a transposed view)
    assert problem(1, 97, 97, 1) == ""  # one row: its stride never matters
    assert problem(97, 1, 1, 1) == ""  # one column
    assert "leading dimension 97" in problem(7, 97, 97, 1)
    assert "no unit stride" in problem(9, 9, 18, 2)
    assert "start" in problem(8, 8, 8, 1, ptr=4098)


@needs_ext
def test_bad_arguments_raise_before_launch():
    from zhisuan.kernels._ext import cuda_ext

    ext = cuda_ext()
    with pytest.raises(ValueError, match="M, N, K must be"):
        ext.gemm_f16(0, 8, 8, 4096, 8, 1, 4096, 8, 1, 4096, 8, 0)
    with pytest.raises(ValueError, match="ldc 4 < N 8"):
        ext.gemm_bf16(8, 8, 8, 4096, 8, 1, 4096, 8, 1, 4096, 4, 0)
    with pytest.raises(ValueError, match="gemm: b: no unit stride"):
        ext.gemm_f16(8, 8, 8, 4096, 8, 1, 4096, 16, 2, 4096, 8, 0)


@needs_ext
@pytest.mark.parametrize(
    "make", [lambda: torch.randn(7, 97), lambda: torch.randn(9, 40)[:, ::2]], ids=["k97", "sliced"]
)
def test_unreadable_operands_are_copied_aligned(make):
    t = make().half()
    copy = cm._readable(t)
    assert copy is not t and torch.equal(copy, t)
    assert copy.stride(1) == 1 and (copy.stride(0) * 2) % 16 == 0 and copy.data_ptr() % 16 == 0


@needs_ext
def test_readable_operands_are_not_copied():
    t = torch.randn(64, 48).half().t()
    assert cm._readable(t) is t


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the reason given without a GPU")
def test_unavailable_without_gpu():
    assert "no CUDA device" in cm.cuda_cpp_missing("cuda")
    assert cm.cuda_cpp_missing("cpu") == "the CUDA C++ matmul runs on cuda, not cpu"


# ---- GPU -----------------------------------------------------------------------------------------


def check(c, a, b):
    reference = a.double() @ b.double()
    torch_error = max_abs_error(torch.matmul(a, b), reference)
    error = max_abs_error(c, reference)
    assert c.dtype == a.dtype and c.shape == reference.shape
    assert error <= tolerance(torch_error, reference, a.dtype), (error, torch_error)


def rand(*shape, dtype):
    return (torch.rand(*shape, device="cuda") * 2 - 1).to(dtype)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize(
    "shape",
    [(1, 1, 1), (1, 7, 97), (97, 130, 7), (130, 97, 1025), (1025, 1025, 1025), (4096, 4096, 4096)],
    ids=str,
)
def test_gpu_shapes(shape, dtype):
    m, n, k = shape
    a, b = rand(m, k, dtype=dtype), rand(k, n, dtype=dtype)
    check(cm.matmul_cuda(a, b), a, b)


@pytest.mark.gpu
@pytest.mark.parametrize("layout", ["ab", "a-bt", "at-b", "at-bt", "sliced"])
def test_gpu_layouts(layout):
    m, n, k = 300, 264, 520
    a = rand(k, m, dtype=torch.float16).t() if "at" in layout else rand(m, k, dtype=torch.float16)
    b = rand(n, k, dtype=torch.float16).t() if "bt" in layout else rand(k, n, dtype=torch.float16)
    if layout == "sliced":
        a = rand(m, 2 * k, dtype=torch.float16)[:, ::2]
    check(cm.matmul_cuda(a, b), a, b)


@pytest.mark.gpu
def test_gpu_runs_on_the_current_stream():
    """Inputs written on a side stream and the product launched there: no race with the default stream."""
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        a, b = rand(2048, 2048, dtype=torch.bfloat16), rand(2048, 2048, dtype=torch.bfloat16)
        c = cm.matmul_cuda(a, b)
    side.synchronize()
    check(c, a, b)


@pytest.mark.gpu
def test_gpu_rejects_fp32():
    a = torch.randn(8, 8, device="cuda")
    with pytest.raises(TypeError, match="fp16, bf16"):
        cm.matmul_cuda(a, a)
