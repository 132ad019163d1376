"""The Triton matmul (zhisuan.kernels.matmul.triton) against float64 references.

On CPU the kernels run under Triton's interpreter: each test that needs it sets TRITON_INTERPRET=1
for itself only (the `interpreter` fixture), so the rest of the suite never sees the interpreter.
The same kernels run compiled in the tests marked gpu.

Tolerance (DESIGN.md): at most 4x the error of torch in the same precision against the fp64
reference, with a floor of a few ulps of the largest output (zhisuan.bench.workloads.base.tolerance).
"""

from __future__ import annotations

import pytest
import torch

from zhisuan import kernels
from zhisuan.bench.workloads.base import max_abs_error, tolerance
from zhisuan.kernels.matmul import triton as tm
from zhisuan.kernels.registry import BackendUnavailable, get

pytest.importorskip("triton")

FP8 = getattr(torch, "float8_e4m3fn", None)


@pytest.fixture
def interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def check_against_torch(c: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """c (ours) vs fp64 within 4x torch's error in a's dtype (plus the floor)."""
    reference = a.double() @ b.double()
    torch_error = max_abs_error(torch.matmul(a, b), reference)
    error = max_abs_error(c, reference)
    assert c.dtype == a.dtype and c.shape == reference.shape
    assert error <= tolerance(torch_error, reference, a.dtype), (error, torch_error)


# ---- interpreter (CPU) ---------------------------------------------------------------------------

SHAPES = [(1, 1, 1), (1, 7, 97), (7, 130, 1), (97, 97, 130), (130, 7, 97), (130, 130, 7)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_interpreted_shapes(interpreter, shape, dtype):
    m, n, k = shape
    a = torch.rand(m, k).mul(2).sub(1).to(dtype)
    b = torch.rand(k, n).mul(2).sub(1).to(dtype)
    check_against_torch(kernels.matmul(a, b, backend="triton"), a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("layout", ["at", "bt", "at-bt", "sliced"])
def test_interpreted_strided_inputs(interpreter, layout, dtype):
    """Transposed views and a column slice are read in place through their strides."""
    m, n, k = 97, 33, 130
    a = torch.randn(k, m).t() if "at" in layout else torch.randn(m, k)
    b = torch.randn(n, k).t() if "bt" in layout else torch.randn(k, n)
    if layout == "sliced":
        a = torch.randn(m, 2 * k)[:, ::2]
    a, b = a.to(dtype), b.to(dtype)
    check_against_torch(tm.matmul_triton(a, b, variant="tiled"), a, b)


@pytest.mark.parametrize("layout", ["ab", "a-bt", "at-b", "at-bt"])
def test_interpreted_tma_persistent(interpreter, layout):
    """The persistent tensor-descriptor kernel (Hopper's), run by the interpreter: row- and
    column-major operands, M and N tails the copy engine pads and clips."""
    m, n, k = 96, 40, 72  # multiples of 8: 16-byte rows in fp16 for every layout
    a = torch.randn(k, m).t() if "at" in layout else torch.randn(m, k)
    b = torch.randn(n, k).t() if "bt" in layout else torch.randn(k, n)
    a, b = a.half(), b.half()
    check_against_torch(tm.matmul_triton(a, b, variant="tma_persistent"), a, b)


def test_tma_refuses_unaligned_rows(interpreter):
    a, b = torch.randn(7, 97).half(), torch.randn(97, 16).half()
    assert "16-byte" in tm.tma_layout_missing(a, b)
    with pytest.raises(ValueError, match="tma_persistent.*16-byte"):
        tm.matmul_triton(a, b, variant="tma_persistent")


@pytest.mark.skipif(FP8 is None, reason="this torch has no float8_e4m3fn")
def test_interpreted_fp8(interpreter):
    """fp8 e4m3 inputs, fp32 accumulation, fp8 output: every entry is the exact product rounded
    once to e4m3 (3 mantissa bits: relative error at most 2^-4, subnormals absolute 2^-10)."""
    a = (torch.rand(97, 130) * 2 - 1).to(FP8)
    b = (torch.rand(130, 33) * 2 - 1).to(FP8)
    c = tm.matmul_triton(a, b)
    reference = a.double() @ b.double()
    assert c.dtype == FP8
    bound = reference.abs() * 2.0**-4 + 2.0**-10
    assert ((c.double() - reference).abs() <= bound).all()


def test_unknown_variant(interpreter):
    a = torch.randn(4, 4)
    with pytest.raises(ValueError, match="unknown variant 'fast'"):
        tm.matmul_triton(a, a, variant="fast")


# ---- availability, registration, mode handling ---------------------------------------------------


def test_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    reason = tm.triton_missing_on("cpu")
    assert reason == "triton: no CUDA device (set TRITON_INTERPRET=1 to run the interpreter on CPU)"
    with pytest.raises(BackendUnavailable, match="TRITON_INTERPRET=1"):
        kernels.matmul(torch.randn(2, 2), torch.randn(2, 2), backend="triton")


def test_cpu_with_the_interpreter(interpreter):
    assert tm.triton_missing_on("cpu") is None
    assert tm.choose_variant(torch.randn(64, 64).half(), torch.randn(64, 64).half()) == "tiled"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the reason given without a GPU")
def test_cuda_unavailable_reason():
    assert "no CUDA device" in tm.triton_missing_on("cuda")


def test_registration():
    backend = get("matmul", "triton")
    assert backend.interpreted("cpu") and not backend.interpreted("cuda")
    assert backend.math_dtypes == {"fp32": "tf32"}
    assert {torch.float16, torch.bfloat16, torch.float32} <= backend.dtypes


def test_kernel_modules_follow_the_device_not_the_environment(interpreter):
    """@triton.jit picks compile-or-interpret when it runs: the kernel file is loaded once per mode,
    whatever TRITON_INTERPRET said when triton was imported."""
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    interpreted = tm.kernels_for(torch.device("cpu"))
    compiled = tm.load_kernel_module("zhisuan.kernels.matmul.triton_kernels", False)
    assert isinstance(interpreted.matmul_kernel, InterpretedFunction)
    assert isinstance(compiled.matmul_kernel, JITFunction)
    assert not isinstance(compiled.matmul_kernel, InterpretedFunction)


def test_configs_per_target_fit_the_tiles():
    for target, make in tm.CONFIGS.items():
        for itemsize in (1, 2, 4):
            configs = make(itemsize)
            assert configs, target
            for cfg in configs:
                assert cfg.kwargs["BLOCK_SIZE_K"] * itemsize >= 16 or target == "interpreter"
    assert len(tm.interpreter_configs(2)) == 1  # no tuning under the interpreter


# ---- GPU -----------------------------------------------------------------------------------------

gpu = pytest.mark.gpu


def _cuda_rand(*shape, dtype):
    return (torch.rand(*shape, device="cuda") * 2 - 1).to(dtype)


@gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize(
    "shape", [(1, 7, 97), (97, 1025, 130), (1025, 97, 1025), (4096, 4096, 4096)], ids=str
)
def test_gpu_shapes(shape, dtype):
    m, n, k = shape
    a, b = _cuda_rand(m, k, dtype=dtype), _cuda_rand(k, n, dtype=dtype)
    check_against_torch(kernels.matmul(a, b, backend="triton"), a, b)


@gpu
@pytest.mark.parametrize("variant", ["tiled", "tma_persistent"])
@pytest.mark.parametrize("layout", ["ab", "a-bt", "at-b", "at-bt"])
def test_gpu_variants_and_layouts(variant, layout):
    if variant == "tma_persistent" and tm.tma_missing(torch.device("cuda")):
        pytest.skip(tm.tma_missing(torch.device("cuda")))
    m, n, k = 1000, 1064, 2056
    a = (
        _cuda_rand(k, m, dtype=torch.bfloat16).t()
        if "at" in layout
        else _cuda_rand(m, k, dtype=torch.bfloat16)
    )
    b = (
        _cuda_rand(n, k, dtype=torch.bfloat16).t()
        if "bt" in layout
        else _cuda_rand(k, n, dtype=torch.bfloat16)
    )
    check_against_torch(tm.matmul_triton(a, b, variant=variant), a, b)


@gpu
def test_gpu_fp32_is_tf32():
    """fp32 inputs multiply as tf32: held to 4x torch's own tf32 error."""
    a, b = _cuda_rand(1025, 2048, dtype=torch.float32), _cuda_rand(2048, 1031, dtype=torch.float32)
    reference = a.double() @ b.double()
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        torch_error = max_abs_error(torch.matmul(a, b), reference)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    assert max_abs_error(tm.matmul_triton(a, b), reference) <= 4 * torch_error


@gpu
@pytest.mark.skipif(FP8 is None, reason="this torch has no float8_e4m3fn")
def test_gpu_fp8():
    reason = tm.fp8_missing(torch.device("cuda"))
    a, b = _cuda_rand(1024, 2048, dtype=FP8), _cuda_rand(2048, 1040, dtype=FP8)
    if reason:
        with pytest.raises(BackendUnavailable, match="8.9"):
            tm.matmul_triton(a, b)
        return
    reference = a.double() @ b.double()
    c = tm.matmul_triton(a, b)
    assert c.dtype == FP8
    assert ((c.double() - reference).abs() <= reference.abs() * 2.0**-4 + 2.0**-9).all()


@gpu
def test_gpu_choice_is_cached_and_described():
    a, b = _cuda_rand(2048, 2048, dtype=torch.bfloat16), _cuda_rand(2048, 2048, dtype=torch.bfloat16)
    first = tm.choose_variant(a, b)
    assert first in tm.VARIANTS and tm.choose_variant(a, b) == first
    assert get("matmul", "triton").describe(a, b) == {"triton_variant": first}
