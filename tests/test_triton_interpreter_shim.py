"""zhisuan.kernels.triton_interpreter_shim: Triton's interpreter, with the shim, computes what the
compiled kernels compute on the GPU (rounding to nearest even, saturating fp8, exact bf16 products,
triton.language's own jit functions callable), and the shim leaves nothing behind.

The kernels here are plain functions wrapped as interpreted kernels directly, so these tests do not
depend on TRITON_INTERPRET.
"""

from __future__ import annotations

import pytest
import torch

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")

from triton.runtime.interpreter import interpreter_builder  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402

from zhisuan.kernels.triton_interpreter_shim import FixedInterpretedFunction, interpreter_fixes  # noqa: E402

FP8 = getattr(torch, "float8_e4m3fn", None)


def _convert(x_ptr, y_ptr, n, BLOCK_SIZE: tl.constexpr):
    offs = tl.arange(0, BLOCK_SIZE)
    x = tl.load(x_ptr + offs, mask=offs < n)
    tl.store(y_ptr + offs, x.to(y_ptr.dtype.element_ty), mask=offs < n)


def _dot(a_ptr, b_ptr, c_ptr, BLOCK_SIZE: tl.constexpr):
    offs = tl.arange(0, BLOCK_SIZE)
    a = tl.load(a_ptr + offs[:, None] * BLOCK_SIZE + offs[None, :])
    b = tl.load(b_ptr + offs[:, None] * BLOCK_SIZE + offs[None, :])
    tl.store(c_ptr + offs[:, None] * BLOCK_SIZE + offs[None, :], tl.dot(a, b))


def _row_stats(x_ptr, out_ptr, n, BLOCK_SIZE: tl.constexpr):
    """out = [max of each row, sum of each row, cdiv(n, 4)] with tl.max, tl.sum, tl.cdiv, tl.zeros."""
    offs = tl.arange(0, BLOCK_SIZE)
    x = tl.load(x_ptr + offs[:, None] * BLOCK_SIZE + offs[None, :])
    tl.store(out_ptr + offs, tl.max(x, 1))
    tl.store(out_ptr + BLOCK_SIZE + offs, tl.sum(x, 1) + tl.zeros((BLOCK_SIZE,), dtype=tl.float32))
    tl.store(out_ptr + 2 * BLOCK_SIZE, tl.cdiv(n, 4).to(tl.float32))


def convert(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    y = torch.empty(x.shape, dtype=dtype)
    FixedInterpretedFunction(_convert)[(1,)](x, y, x.numel(), BLOCK_SIZE=triton.next_power_of_2(x.numel()))
    return y


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int16 if t.element_size() == 2 else torch.int8)


def test_fp32_to_bf16_rounds_to_nearest_even():
    # 1 + 2^-8 is a tie between 1 and 1 + 2^-7: even is 1; 1 + 3 * 2^-8 rounds up to 1 + 2^-6.
    ties = torch.tensor([1 + 2**-8, 1 + 3 * 2**-8, -(1 + 2**-8), 3.0e38, float("inf"), float("nan")])
    x = torch.cat([torch.randn(57) * 100, ties])
    assert torch.equal(bits(convert(x, torch.bfloat16)), bits(x.to(torch.bfloat16)))


@pytest.mark.skipif(FP8 is None, reason="this torch has no float8_e4m3fn")
def test_fp32_to_fp8_rounds_and_saturates():
    x = torch.cat([torch.randn(60) * 30, torch.tensor([31.9, 1000.0, -1000.0, 2.0**-9, float("nan")])])
    y = convert(x, FP8)
    expected = x.clamp(-448, 448).to(FP8)  # satfinite, like cvt.rn.satfinite on the GPU
    assert float(y[-5]) == 32.0 and float(y[-4]) == 448.0 and float(y[-3]) == -448.0 and y[-1].isnan()
    assert torch.equal(bits(y), bits(expected))


def test_bf16_dot_multiplies_the_values():
    a, b = torch.randn(16, 16).bfloat16(), torch.randn(16, 16).bfloat16()
    c = torch.empty(16, 16)
    FixedInterpretedFunction(_dot)[(1,)](a, b, c, BLOCK_SIZE=16)
    torch.testing.assert_close(c, a.float() @ b.float(), rtol=1e-6, atol=1e-5)


def test_language_functions_are_callable():
    x = torch.randn(16, 16)
    out = torch.empty(33)
    FixedInterpretedFunction(_row_stats)[(1,)](x, out, 97, BLOCK_SIZE=16)
    assert torch.equal(out[:16], x.max(dim=1).values)
    torch.testing.assert_close(out[16:32], x.sum(dim=1))
    assert float(out[32]) == 25.0


def test_a_launch_leaves_triton_language_as_it_was():
    """Calling interpreted tl.max / tl.sum makes Triton's interpreter patch triton.language.core
    without undoing it; after our launch every attribute is back (compiled kernels need them)."""
    namespaces = [tl, tl.core, tl.standard, tl.math, tl.tensor, tl.dtype]
    before = [dict(vars(namespace)) for namespace in namespaces]
    FixedInterpretedFunction(_row_stats)[(1,)](torch.randn(16, 16), torch.empty(33), 97, BLOCK_SIZE=16)
    for namespace, old in zip(namespaces, before, strict=True):
        changed = [name for name, value in old.items() if vars(namespace).get(name) is not value]
        assert not changed, (namespace.__name__, changed[:5])


def test_fixes_are_undone_even_after_an_error():
    before = dict(vars(interpreter_builder))
    with pytest.raises(RuntimeError, match="inside"), interpreter_fixes():
        assert not isinstance(tl.zeros, JITFunction)
        raise RuntimeError("inside")
    assert isinstance(tl.zeros, JITFunction) and isinstance(tl.standard.max, JITFunction)
    assert dict(vars(interpreter_builder)) == before
