"""The C++ attention kernel (zhisuan.kernels._C through the cpp attention backend) against a float64 reference.

Tolerance (DESIGN.md): our error against the fp64 reference may be at most 4x the torch backend's
fp32 error on the same inputs, with a floor of a few ulps of the largest output (the project's one
policy, zhisuan.bench.workloads.base.tolerance). The torch backend is held to the same reference, so a
wrong baseline cannot loosen the check unnoticed. Every code path this CPU runs (avx512, avx2,
portable) is tested, not only the one picked automatically.
"""

from __future__ import annotations

import math

import pytest
import torch

from zhisuan import kernels
from zhisuan.bench.workloads.base import max_abs_error, tolerance
from zhisuan.kernels._ext import cpu_ext
from zhisuan.kernels.attention import cpp
from zhisuan.kernels.registry import BackendUnavailable

pytestmark = pytest.mark.skipif(cpp.cpp_missing("cpu") is not None, reason=str(cpp.cpp_missing("cpu")))

ISAS = cpp.isas() if cpp.cpp_missing("cpu") is None else []

# (batch, heads_q, heads_kv, seq_q, seq_k, head_dim, causal)
SHAPES = [
    (2, 2, 2, 1, 1, 64, False),
    (1, 2, 1, 17, 17, 80, True),
    (1, 8, 2, 17, 129, 128, True),  # GQA 8:2, causal with a KV prefix (seq_q < seq_k)
    (1, 8, 2, 129, 17, 7, True),  # seq_q > seq_k: the first 112 rows see no key
    (2, 4, 4, 129, 129, 7, False),
    (1, 2, 2, 1, 129, 64, True),  # one query (decoding): sees every key
    (1, 2, 1, 129, 1, 80, True),  # one key: only the last query sees it
    (1, 2, 1, 129, 17, 80, False),
    (1, 2, 2, 1025, 1025, 64, True),
]


def shape_id(shape: tuple) -> str:
    b, hq, hkv, sq, sk, d, causal = shape
    return f"{b}x{hq}:{hkv}x{sq}x{sk}x{d}" + ("-causal" if causal else "")


def reference(q, k, v, causal: bool, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(o, lse) in float64, spelled out: scores, mask, softmax, P·V; empty rows give 0 and -inf."""
    q, k, v = (t.to(torch.float64) for t in (q, k, v))
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    seq_q, seq_k = q.shape[2], k.shape[2]
    scores = (q @ k.transpose(-1, -2)) * scale
    if causal:
        visible = torch.arange(seq_k)[None, :] <= torch.arange(seq_q)[:, None] + (seq_k - seq_q)
        scores = scores.masked_fill(~visible, -math.inf)
    row_max = scores.amax(dim=-1, keepdim=True)
    seen = torch.isfinite(row_max)
    weights = torch.exp(scores - torch.where(seen, row_max, 0.0))
    total = weights.sum(dim=-1, keepdim=True)
    probs = torch.where(seen, weights / torch.where(seen, total, 1.0), 0.0)
    lse = torch.where(seen, row_max + torch.log(total), -math.inf).squeeze(-1)
    return probs @ v, lse


def make_qkv(shape: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    b, hq, hkv, sq, sk, d, _ = shape
    return torch.randn(b, hq, sq, d), torch.randn(b, hkv, sk, d), torch.randn(b, hkv, sk, d)


def check_against_reference(out, q, k, v, causal: bool) -> None:
    """out within tolerance of the fp64 reference; the torch backend, the baseline, too."""
    ref, _ = reference(q, k, v, causal, 1.0 / math.sqrt(q.shape[3]))
    baseline = kernels.attention(q, k, v, causal=causal, backend="torch")
    baseline_err = max_abs_error(baseline, ref)
    assert baseline_err <= 1e-5, f"torch backend disagrees with the reference: {baseline_err:.3g}"
    err, tol = max_abs_error(out, ref), tolerance(baseline_err, ref, torch.float32)
    assert err <= tol, f"max error {err:.3g} > tolerance {tol:.3g} (torch's error {baseline_err:.3g})"


def check_lse(lse: torch.Tensor, ref_lse: torch.Tensor) -> None:
    assert lse.dtype == torch.float32 and lse.shape == ref_lse.shape
    assert torch.equal(torch.isneginf(lse), torch.isneginf(ref_lse)), "rows that see no key must give -inf"
    seen = torch.isfinite(ref_lse)
    if seen.any():
        err = float((lse.to(torch.float64) - ref_lse)[seen].abs().max())
        tol = 8 * torch.finfo(torch.float32).eps * max(1.0, float(ref_lse[seen].abs().max()))
        assert err <= tol, f"lse error {err:.3g} > {tol:.3g}"


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_front_door_matches_reference(shape):
    q, k, v = make_qkv(shape)
    out = kernels.attention(q, k, v, causal=shape[-1], backend="cpp")
    assert out.shape == q.shape and out.dtype == torch.float32 and out.is_contiguous()
    check_against_reference(out, q, k, v, shape[-1])


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", [s for s in SHAPES if s[3] < 1025], ids=shape_id)
def test_every_code_path_and_lse(isa, shape):
    q, k, v = make_qkv(shape)
    out, lse = cpp.attention_with_lse(q, k, v, causal=shape[-1], isa=isa)
    check_against_reference(out, q, k, v, shape[-1])
    check_lse(lse, reference(q, k, v, shape[-1], 1.0 / math.sqrt(q.shape[3]))[1])


def test_rows_that_see_no_key_are_zero():
    q, k, v = make_qkv((1, 2, 1, 40, 9, 16, True))
    out, lse = cpp.attention_with_lse(q, k, v, causal=True)
    assert torch.count_nonzero(out[:, :, :31]) == 0  # query i sees keys j <= i - 31
    assert torch.isneginf(lse[:, :, :31]).all() and torch.isfinite(lse[:, :, 31:]).all()
    assert torch.count_nonzero(out[:, :, 31:]) == out[:, :, 31:].numel()


@pytest.mark.parametrize("causal", [False, True])
def test_non_contiguous_inputs(causal):
    # q from a (batch, seq, heads, dim) tensor, k transposed the same way, v with a head_dim stride
    # of 2 (k and v then take the kernel's packing path).
    q = torch.randn(2, 37, 4, 80).transpose(1, 2)
    k = torch.randn(2, 53, 2, 80).transpose(1, 2)
    v = torch.randn(2, 2, 53, 160)[..., ::2]
    kt = torch.randn(2, 2, 80, 53).transpose(2, 3)  # rows of k strided (dim stride 53)
    assert not (q.is_contiguous() or k.is_contiguous() or v.is_contiguous() or kt.is_contiguous())
    for keys in (k, kt):
        out = kernels.attention(q, keys, v, causal=causal, backend="cpp")
        check_against_reference(out, q, keys, v, causal)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("block_q, block_k", [(1, 1), (7, 5), (20, 33), (200, 300)])
def test_odd_tile_sizes(isa, block_q, block_k):
    # Tiles that cut every mask and tail case differently: the result must not depend on them.
    q, k, v = make_qkv((1, 4, 2, 45, 70, 24, True))
    for causal in (True, False):
        out = torch.empty_like(q)
        cpu_ext().attention_f32(
            q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr(), 0, 1, 4, 2, 45, 70, 24,
            q.stride(), k.stride(), v.stride(), causal, 1.0 / math.sqrt(24), isa, block_q, block_k,
        )  # fmt: skip
        check_against_reference(out, q, k, v, causal)


def test_custom_scale():
    q, k, v = make_qkv((1, 2, 2, 33, 65, 32, False))
    out = kernels.attention(q, k, v, scale=0.37, backend="cpp")
    ref, _ = reference(q, k, v, False, 0.37)
    baseline = kernels.attention(q, k, v, scale=0.37, backend="torch")
    assert max_abs_error(out, ref) <= tolerance(max_abs_error(baseline, ref), ref, torch.float32)


def test_fp16_is_unavailable_naming_the_dtype():
    q, k, v = (t.half() for t in make_qkv((1, 2, 2, 8, 8, 16, False)))
    with pytest.raises(BackendUnavailable, match="fp16"):
        kernels.attention(q, k, v, backend="cpp")
    with pytest.raises(BackendUnavailable, match="fp16"):
        cpp.attention_with_lse(q, k, v)


def test_unknown_code_path_is_refused():
    q, k, v = make_qkv((1, 1, 1, 4, 4, 8, False))
    with pytest.raises(ValueError, match="sse9"):
        cpp.attention_with_lse(q, k, v, isa="sse9")


def test_empty_inputs_with_lse():
    q, k, v = torch.randn(1, 2, 5, 8), torch.randn(1, 2, 0, 8), torch.randn(1, 2, 0, 8)
    out, lse = cpp.attention_with_lse(q, k, v)
    assert torch.count_nonzero(out) == 0 and torch.isneginf(lse).all() and lse.shape == (1, 2, 5)
