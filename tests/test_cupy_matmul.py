"""The cupy matmul backend (cuBLAS through cupy, zero-copy from torch).

Without a GPU: its registration and the reason it gives. On the GPU with cupy installed (marked
gpu): products against float64 within 4x torch's error, transposed inputs, and ordering on torch's
current stream.
"""

from __future__ import annotations

import pytest
import torch

from zhisuan.bench.workloads.base import max_abs_error, tolerance
from zhisuan.kernels.matmul import cupy as cupy_backend
from zhisuan.kernels.registry import get


def test_registration():
    backend = get("matmul", "cupy")
    assert backend.devices == frozenset({"cuda"})
    assert torch.bfloat16 not in backend.dtypes  # cupy has no bfloat16
    assert backend.why_not("cpu") == "cupy does not run on cpu (runs on: cuda)"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the reason given without a GPU")
def test_unavailable_without_gpu():
    assert "no CUDA device" in cupy_backend.cupy_missing_on("cuda")


def check(c, a, b):
    reference = a.double() @ b.double()
    torch_error = max_abs_error(torch.matmul(a, b), reference)
    assert c.dtype == a.dtype and c.shape == reference.shape
    assert max_abs_error(c, reference) <= tolerance(torch_error, reference, a.dtype)


needs_cupy = pytest.mark.skipif(
    cupy_backend.cupy_missing() is not None, reason=str(cupy_backend.cupy_missing())
)


@pytest.mark.gpu
@needs_cupy
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("shape", [(1, 7, 97), (97, 1025, 130), (2048, 2048, 2048)], ids=str)
def test_gpu_products(shape, dtype):
    m, n, k = shape
    a = torch.randn(m, k, device="cuda", dtype=dtype)
    b = torch.randn(k, n, device="cuda", dtype=dtype)
    check(cupy_backend.matmul_cupy(a, b), a, b)


@pytest.mark.gpu
@needs_cupy
def test_gpu_transposed_inputs():
    a = torch.randn(300, 200, device="cuda", dtype=torch.float16).t()
    b = torch.randn(150, 300, device="cuda", dtype=torch.float16).t()
    check(cupy_backend.matmul_cupy(a, b), a, b)


@pytest.mark.gpu
@needs_cupy
def test_gpu_ordered_on_the_current_stream():
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        a = torch.randn(4096, 4096, device="cuda").mul_(0.5)  # queued on the side stream
        c = cupy_backend.matmul_cupy(a, a)
    side.synchronize()
    check(c, a, a)
