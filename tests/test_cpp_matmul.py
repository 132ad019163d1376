"""The C++ GEMM (zhisuan.kernels._C through the cpp matmul backend) against float64 references.

Tolerance (DESIGN.md): our error against the reference may be at most 4x torch.matmul's error in
the same precision, with a floor of a few ulps of the largest reference value. The reference is
computed in float64 for fp32 inputs; for fp64 inputs it must be more precise than fp64 itself, so
it is computed in the x87 extended precision of numpy.longdouble (64-bit significand).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from zhisuan import kernels
from zhisuan.bench.workloads.base import max_abs_error, tolerance
from zhisuan.kernels._ext import cpu_ext
from zhisuan.kernels.matmul import cpp
from zhisuan.kernels.registry import BackendUnavailable

pytestmark = pytest.mark.skipif(cpp.cpp_missing("cpu") is not None, reason=str(cpp.cpp_missing("cpu")))

SMALL = (1, 7, 97)
# Every combination of the small sizes, and each of M, N, K at 1025 (past a KC block and a tile
# multiple) with small partners, instead of all 64 combinations.
SHAPES = list(itertools.product(SMALL, SMALL, SMALL)) + [
    (1025, 7, 97),
    (7, 1025, 97),
    (97, 7, 1025),
    (1025, 97, 1025),
    (1, 1025, 1025),
]
DTYPES = [torch.float32, torch.float64]
EXTENDED = np.finfo(np.longdouble).eps < np.finfo(np.float64).eps


def rand(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return (torch.rand(*shape, dtype=torch.float64) * 2 - 1).to(dtype)


def precise_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A @ B more precise than a.dtype, rounded to float64."""
    if a.dtype != torch.float64:
        return a.double() @ b.double()
    if not EXTENDED:
        pytest.skip("numpy.longdouble is no wider than float64 here: no reference finer than fp64")
    product = a.numpy().astype(np.longdouble) @ b.numpy().astype(np.longdouble)
    return torch.from_numpy(product.astype(np.float64))


def check(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Run the cpp backend on (a, b) and assert its error is within the policy; return C."""
    out = kernels.matmul(a, b, backend="cpp")
    assert out.shape == (a.shape[0], b.shape[1]) and out.dtype == a.dtype and out.is_contiguous()
    reference = precise_product(a, b)
    err = max_abs_error(out, reference)
    tol = tolerance(max_abs_error(torch.matmul(a, b), reference), reference, a.dtype)
    assert err <= tol, (
        f"cpp matmul {tuple(a.shape)} @ {tuple(b.shape)} {a.dtype}: error {err:.3g} > {tol:.3g}"
    )
    return out


@pytest.fixture
def isa_restored():
    yield
    cpp.set_isa("auto")


@pytest.fixture
def threads_restored():
    yield
    cpp.set_threads(0)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp64"])
@pytest.mark.parametrize("m,n,k", SHAPES, ids=[f"{m}x{n}x{k}" for m, n, k in SHAPES])
def test_matches_fp64_reference(m, n, k, dtype):
    check(rand(m, k, dtype=dtype), rand(k, n, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp64"])
def test_transposed_views_are_read_in_place(dtype):
    a = rand(300, 97, dtype=dtype).t()  # (97, 300), row stride 1
    b = rand(130, 300, dtype=dtype).t()  # (300, 130), column stride 300
    assert not a.is_contiguous() and not b.is_contiguous()
    check(a, b)


def test_sliced_and_offset_views():
    base_a = rand(200, 260)
    base_b = rand(300, 90)
    a = base_a[3:100, 5:255:2]  # storage offset, column stride 2
    b = base_b[1:251:2, 7:]  # row stride 2 rows, storage offset
    assert a.shape[1] == b.shape[0]
    check(a, b)


def test_broadcast_view_with_zero_stride():
    a = rand(1, 97).expand(33, 97)  # every row the same, row stride 0
    out = check(a, rand(97, 40))
    assert torch.equal(out[0], out[32])


@pytest.mark.parametrize("m", [6, 48, 49])
def test_short_outputs_read_b_in_place(m):
    # Up to 8 tiles of rows (48 fp32 rows with AVX-512) B is read in place, beyond it is packed;
    # B is a column slice of a wider matrix, so its row stride differs from N.
    b = rand(300, 1100)[:, 3:1028]
    check(rand(m, 300), b)


def test_wide_output_spans_several_b_panels():
    check(rand(3, 7), rand(7, 4099))  # N beyond one packed B panel (NC columns)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp64"])
def test_row_major_a_is_read_in_place_through_its_row_stride(dtype):
    # Full tiles of rows of a row-major A are read in place, the ragged last one is packed. A is a
    # column slice of a wider matrix (row stride 1100, not K), K spans three KC blocks and N
    # several B panels, so every in-place read is offset by a block's row and depth.
    a = rand(103, 1100, dtype=dtype)[:, 3:1028]
    assert a.stride() == (1100, 1)
    check(a, rand(1025, 1100, dtype=dtype))


@pytest.mark.parametrize("isa", cpu_ext().isas() if cpp.cpp_missing("cpu") is None else [])
def test_every_isa_this_cpu_runs(isa, isa_restored):
    cpp.set_isa(isa)
    assert cpp.isa() == isa
    for dtype in DTYPES:
        for m, n, k in [(1, 1, 1), (7, 97, 7), (97, 1025, 130), (130, 65, 600)]:
            check(rand(m, k, dtype=dtype), rand(k, n, dtype=dtype))


def test_automatic_isa_is_the_widest_the_cpu_runs():
    assert cpp.isa() == cpu_ext().isas()[0]


def test_unknown_or_unsupported_isa_is_refused(isa_restored):
    with pytest.raises(ValueError, match="unknown ISA 'sse9'"):
        cpp.set_isa("sse9")
    for isa in {"avx512", "avx2"} - set(cpu_ext().isas()):
        with pytest.raises(ValueError, match="cannot run"):
            cpp.set_isa(isa)


def test_thread_count_does_not_change_the_result(threads_restored):
    # Each element's sum runs in the same order whatever the split between threads: bitwise equal.
    a, b = rand(301, 517), rand(517, 263)
    cpp.set_threads(1)
    assert cpp.threads() == 1
    one = kernels.matmul(a, b, backend="cpp")
    cpp.set_threads(0)
    assert cpp.threads() >= 1
    assert torch.equal(one, kernels.matmul(a, b, backend="cpp"))


def test_negative_thread_count_is_refused():
    with pytest.raises(ValueError, match="n must be >= 0"):
        cpp.set_threads(-1)


@pytest.mark.parametrize("m,n,k", [(0, 5, 3), (4, 0, 3), (4, 5, 0), (0, 0, 0)])
def test_empty_dimensions_through_the_front_door(m, n, k):
    out = kernels.matmul(rand(m, k), rand(k, n), backend="cpp")
    assert out.shape == (m, n)
    assert torch.equal(out, torch.zeros(m, n))


def test_kernel_writes_zeros_when_k_is_zero():
    c = torch.full((3, 4), 7.0)
    a, b = torch.empty(3, 0), torch.empty(0, 4)
    cpu_ext().gemm_f32(3, 4, 0, a.data_ptr(), 0, 1, b.data_ptr(), 4, 1, c.data_ptr(), 4)
    assert torch.equal(c, torch.zeros(3, 4))


def test_kernel_refuses_negative_sizes():
    c = torch.empty(2, 2)
    with pytest.raises(ValueError, match="negative dimension"):
        cpu_ext().gemm_f32(-1, 2, 2, c.data_ptr(), 2, 1, c.data_ptr(), 2, 1, c.data_ptr(), 2)


def test_fp16_is_unavailable_with_the_dtype_named():
    a = rand(4, 4, dtype=torch.float16)
    with pytest.raises(BackendUnavailable, match="fp16 not supported by cpp"):
        kernels.matmul(a, a, backend="cpp")


def test_registered_as_the_preferred_cpu_backend():
    status = kernels.backends("matmul", "cpu")["cpp"]
    assert status.available and set(status.dtypes) == {"fp32", "fp64"}
    # Without a backend name, fp32 on the CPU goes to cpp (priority above the torch baseline).
    from zhisuan.kernels.registry import select

    assert select("matmul", "cpu", torch.float32).name == "cpp"


def test_cuda_tensors_go_to_the_cuda_gemm_with_its_own_dtypes():
    # One backend, two kernels: fp32/fp64 on cpu, fp16/bf16 on cuda (kernels/matmul/cuda.py).
    backend = kernels.registry.get("matmul", "cpp")
    assert backend.dtypes_on("cpu") == {torch.float32, torch.float64}
    assert backend.dtypes_on("cuda") == {torch.float16, torch.bfloat16}
    assert "bf16 not supported by cpp on cpu" in backend.why_not("cpu", torch.bfloat16)
    assert "fp32 not supported by cpp on cuda" in backend.why_not("cuda", torch.float32)
    if not torch.cuda.is_available():
        assert "no CUDA device" in cpp.cpp_missing("cuda")
        assert kernels.backends("matmul", "cuda")["cpp"].dtypes == ("bf16", "fp16")


def test_unavailable_on_other_devices_with_the_reason():
    assert cpp.cpp_missing("mps") == "cpp matmul runs on cpu and cuda, not mps"
