"""The Triton matmul (zhisuan.kernels.matmul.triton) against float64 references.

On CPU the kernels run under Triton's interpreter (with zhisuan.kernels.triton_interpreter_shim):
each test that needs it sets TRITON_INTERPRET=1 for itself only (the `interpreter` fixture), so the
rest of the suite never sees the interpreter. The same kernels run compiled in the tests marked gpu
(first run on an H200 on 2026-11-27: docs/benchmarks/h200.md); tests/test_triton_compile.py compiles them for sm_90 without one.

Tolerance (DESIGN.md): at most 4x the error of torch in the same precision against the fp64
reference, with a floor of a few ulps of the largest output (zhisuan.bench.workloads.base.tolerance).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from zhisuan import kernels
from zhisuan.bench.workloads import spec_for
from zhisuan.bench.workloads.base import max_abs_error, tolerance
from zhisuan.kernels.devices import triton_missing_on
from zhisuan.kernels.matmul import triton as tm
from zhisuan.kernels.registry import BackendUnavailable, get
from zhisuan.kernels.triton_loader import kernels_for, load_kernel_module

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

SHAPES = [
    (1, 1, 1),
    (1, 7, 97),
    (7, 130, 1),
    (97, 97, 130),
    (130, 7, 97),
    (130, 130, 7),
    (1025, 7, 33),
    (7, 1025, 97),
]


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


@pytest.mark.skipif(FP8 is None, reason="this torch has no float8_e4m3fn")
def test_fp8_check_of_the_harness_is_meaningful(interpreter):
    """The harness's fp8 bound (zhisuan.bench.workloads.matmul) passes our kernel, is far below the
    old 0.5 × max|C| (under one e4m3 ulp of the largest output) and fails a result with one wrong tile."""
    spec, backend = spec_for("matmul"), get("matmul", "triton")
    inputs = spec.make_inputs({"M": 97, "N": 65, "K": 1025}, FP8, "cpu", seed=3)
    reference = spec.reference(inputs)
    tol, rule = spec.tolerance(inputs, reference, None, FP8, None)
    c = spec.bind(backend, inputs)()
    assert max_abs_error(c, reference) <= tol < float(reference.abs().max()) / 8
    assert "u_out" in rule
    wrong = c.clone()
    wrong[:32, :32] = wrong[32:64, :32]
    assert max_abs_error(wrong, reference) > tol


def test_harness_times_only_the_launch(interpreter, monkeypatch):
    """The harness's call (Backend.prepare) does the set-up once: repeated calls write one output,
    with no checks, variant choice or allocation in them."""
    spec, backend = spec_for("matmul"), get("matmul", "triton")
    inputs = spec.make_inputs({"M": 7, "N": 97, "K": 33}, torch.float16, "cpu", seed=1)
    launch = spec.bind(backend, inputs)

    def no_set_up(*args):
        raise AssertionError("set-up inside the timed call")

    monkeypatch.setattr(tm, "_check", no_set_up)
    monkeypatch.setattr(tm, "choose_variant", no_set_up)
    first, second = launch(), launch()
    assert first is second
    check_against_torch(second, *inputs.args)


def test_tma_descriptors_are_built_once(interpreter, monkeypatch):
    """The persistent variant's tensor descriptors are made when the launch is prepared, not per launch."""
    made = []
    monkeypatch.setattr(
        tm, "_descriptor", lambda t, transposed, make=tm._descriptor: made.append(t) or make(t, transposed)
    )
    a, b = torch.randn(64, 48).half(), torch.randn(48, 32).half()
    launch = tm.prepare_matmul(a, b, variant="tma_persistent")
    launch(), launch()
    assert len(made) == 3
    check_against_torch(launch(), a, b)


def test_unknown_variant(interpreter):
    a = torch.randn(4, 4)
    with pytest.raises(ValueError, match="unknown variant 'fast'"):
        tm.matmul_triton(a, a, variant="fast")


# ---- availability, registration, mode handling ---------------------------------------------------


def test_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    reason = triton_missing_on("cpu")
    assert reason == "triton: no CUDA device (set TRITON_INTERPRET=1 to run the interpreter on CPU)"
    with pytest.raises(BackendUnavailable, match="TRITON_INTERPRET=1"):
        kernels.matmul(torch.randn(2, 2), torch.randn(2, 2), backend="triton")


def test_cpu_with_the_interpreter(interpreter):
    assert triton_missing_on("cpu") is None
    assert tm.choose_variant(torch.randn(64, 64).half(), torch.randn(64, 64).half()) == "tiled"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the reason given without a GPU")
def test_cuda_unavailable_reason():
    assert "no CUDA device" in triton_missing_on("cuda")


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

    interpreted = kernels_for(tm.KERNELS, torch.device("cpu"))
    compiled = load_kernel_module(tm.KERNELS, False)
    assert isinstance(interpreted.matmul_kernel, InterpretedFunction)
    assert isinstance(compiled.matmul_kernel, JITFunction)
    assert not isinstance(compiled.matmul_kernel, InterpretedFunction)


def test_triton_imported_under_the_interpreter():
    """TRITON_INTERPRET=1 for the whole process: triton.language is then built for the interpreter,
    the CPU path still works, and CUDA says why it cannot compile (triton_stdlib_interpreted)."""
    script = (
        "import torch; from zhisuan import kernels; from zhisuan.kernels import devices\n"
        "a, b = torch.randn(33, 65).bfloat16(), torch.randn(65, 17).bfloat16()\n"
        "reference = a.double() @ b.double()\n"
        "error = (kernels.matmul(a, b, backend='triton').double() - reference).abs().max()\n"
        "print(devices.triton_stdlib_interpreted(), bool(error <= 2**-7 * reference.abs().max()))\n"
    )
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["True", "True"], out.stderr[-2000:]


def test_configs_per_target_fit_the_tiles():
    for target, make in tm.CONFIGS.items():
        for itemsize in (1, 2, 4):
            configs = make(itemsize)
            assert configs, target
            for cfg in configs:
                assert cfg.kwargs["BLOCK_SIZE_K"] * itemsize >= 16 or target == "interpreter"
    assert len(tm.interpreter_configs(2)) == 1  # no tuning under the interpreter
    # Triton refuses a promotion interval longer than the K tile.
    assert all(cfg.kwargs["BLOCK_SIZE_K"] >= tm.FP8_PROMOTION_INTERVAL for cfg in tm.hopper_configs(1))


def test_fp8_promotion_only_for_hopper_fp8(interpreter):
    assert tm.max_num_imprecise_acc(torch.randn(2, 2).half()) is None
    if FP8 is not None:  # the interpreter accumulates in fp32 anyway
        assert tm.max_num_imprecise_acc(torch.randn(2, 2).to(FP8)) is None


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
@pytest.mark.parametrize("k", [97, 8192])
def test_gpu_fp8(k):
    """Held to the harness's fp8 bound (half an e4m3 ulp of max|C| plus fp32 summation). K = 8192
    runs 64 K tiles through the promoted accumulator (FP8_PROMOTION_INTERVAL)."""
    reason = tm.fp8_missing(torch.device("cuda"))
    spec = spec_for("matmul")
    inputs = spec.make_inputs({"M": 1024, "N": 1040, "K": k}, FP8, "cuda", seed=5)
    if reason:
        with pytest.raises(BackendUnavailable, match="8.9"):
            tm.matmul_triton(*inputs.args)
        return
    reference = spec.reference(inputs)
    c = tm.matmul_triton(*inputs.args)
    assert c.dtype == FP8
    assert max_abs_error(c, reference) <= spec.tolerance(inputs, reference, None, FP8, None)[0]


@gpu
def test_gpu_choice_is_cached_and_described():
    a, b = _cuda_rand(2048, 2048, dtype=torch.bfloat16), _cuda_rand(2048, 2048, dtype=torch.bfloat16)
    first = tm.choose_variant(a, b)
    assert first in tm.VARIANTS and tm.choose_variant(a, b) == first
    assert get("matmul", "triton").describe(a, b) == {"triton_variant": first}
