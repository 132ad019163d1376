"""The Triton flash attention (zhisuan.kernels.attention.triton), forward and backward, against float64.

On CPU the kernels run under Triton's interpreter (with zhisuan.kernels.triton_interpreter_shim),
which this module switches on per test (the `interpreter` fixture); there fp32 is accepted so the
comparison can be tight. The GPU tests ran on an H200 (docs/benchmarks/h200.md); tests/test_triton_compile.py
compiles the kernels for sm_90 without one. The forward output
and log-sum-exp are compared with an fp64 reference; dq, dk, dv with torch autograd through the
fp64 reference. Tolerance (DESIGN.md): at most 4x the error of torch in the same precision
(SDPA through the torch backend, its autograd for gradients), with a floor of a few ulps.
"""

from __future__ import annotations

import math

import pytest
import torch

from zhisuan import kernels
from zhisuan.bench.workloads import spec_for
from zhisuan.bench.workloads.attention import reference_attention
from zhisuan.bench.workloads.base import max_abs_error, tolerance
from zhisuan.kernels.attention import triton as ta
from zhisuan.kernels.registry import BackendUnavailable, get

pytest.importorskip("triton")


@pytest.fixture
def interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def make_inputs(shape, dtype, device="cpu"):
    b, hq, hkv, sq, sk, d, _ = shape
    q = torch.randn(b, hq, sq, d, device=device).to(dtype)
    k = torch.randn(b, hkv, sk, d, device=device).to(dtype)
    v = torch.randn(b, hkv, sk, d, device=device).to(dtype)
    grad_out = torch.randn(b, hq, sq, d, device=device).to(dtype)
    return q, k, v, grad_out


def reference_lse(q, k, causal: bool, scale: float) -> torch.Tensor:
    group = q.shape[1] // k.shape[1]
    k = k.double().repeat_interleave(group, dim=1)
    scores = (q.double() @ k.transpose(-1, -2)) * scale
    if causal:
        seq_q, seq_k = q.shape[2], k.shape[2]
        visible = torch.arange(seq_k)[None, :] <= torch.arange(seq_q)[:, None] + (seq_k - seq_q)
        scores = scores.masked_fill(~visible.to(scores.device), -math.inf)
    return torch.logsumexp(scores, dim=-1)


def forward_and_grads(fn, q, k, v, grad_out, causal, scale):
    q, k, v = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    o = fn(q, k, v, causal=causal, scale=scale)
    return (o.detach(), *torch.autograd.grad(o, (q, k, v), grad_out.to(o.dtype)))


def check_case(shape, dtype, device="cpu"):
    """o, dq, dk, dv each within 4x torch's error in dtype (vs fp64), and lse against fp64."""
    causal = shape[-1]
    q, k, v, grad_out = make_inputs(shape, dtype, device)
    scale = 1.0 / math.sqrt(q.shape[-1])
    exact = forward_and_grads(reference_attention, *(t.double() for t in (q, k, v, grad_out)), causal, scale)
    torch_fn = get("attention", "torch").fn
    theirs = forward_and_grads(torch_fn, q, k, v, grad_out, causal, scale)
    ours = forward_and_grads(ta.attention_triton, q, k, v, grad_out, causal, scale)
    for name, mine, their, ref in zip(("o", "dq", "dk", "dv"), ours, theirs, exact, strict=True):
        assert mine.dtype == dtype and mine.shape == ref.shape, name
        error, torch_error = max_abs_error(mine, ref), max_abs_error(their, ref)
        assert error <= tolerance(torch_error, ref, dtype), (name, error, torch_error)

    _, lse = ta.attention_forward(q, k, v, causal=causal, scale=scale)
    expected = reference_lse(q, k, causal, scale)
    assert torch.equal(torch.isneginf(lse), torch.isneginf(expected))  # rows that see no key
    finite = torch.isfinite(expected)
    if finite.any():
        lse_error = float((lse.double()[finite] - expected[finite]).abs().max())
        assert lse_error <= 8 * torch.finfo(dtype).eps * max(1.0, float(expected[finite].abs().max()))


# (batch, heads_q, heads_kv, seq_q, seq_k, head_dim, causal)
SHAPES_FP32 = [
    (2, 2, 2, 1, 1, 64, False),
    (1, 2, 1, 129, 129, 64, False),
    (1, 2, 2, 129, 129, 80, True),
    (1, 8, 2, 17, 17, 64, True),  # GQA 8:2
    (1, 8, 2, 17, 129, 80, True),  # GQA, causal with seq_q < seq_k (a KV prefix)
    (1, 2, 1, 129, 17, 64, True),  # seq_q > seq_k: the first 112 rows see no key
    (1, 2, 1, 1, 129, 80, True),  # one query sees every key
    (1, 2, 2, 17, 1, 64, False),
    (1, 1, 1, 7, 1025, 80, True),  # one query block walks 33 key blocks, the last a tail of 1
    (1, 1, 1, 1025, 7, 64, False),
]


def shape_id(shape) -> str:
    b, hq, hkv, sq, sk, d, causal = shape
    return f"{b}x{hq}:{hkv}x{sq}x{sk}x{d}" + ("-causal" if causal else "")


@pytest.mark.parametrize("shape", SHAPES_FP32, ids=shape_id)
def test_interpreted_fp32(interpreter, shape):
    check_case(shape, torch.float32)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_interpreted_half_precision(interpreter, dtype):
    check_case((1, 4, 2, 33, 65, 80, True), dtype)


def test_interpreted_strided_inputs(interpreter):
    """q, k, v as (batch, seq, heads, dim) buffers viewed as (batch, heads, seq, dim): read through strides."""
    q = torch.randn(1, 33, 4, 64).transpose(1, 2)
    k = torch.randn(1, 40, 2, 64).transpose(1, 2)
    v = torch.randn(1, 2, 64, 40).transpose(2, 3)
    grad_out = torch.randn(1, 33, 4, 64).transpose(1, 2)
    scale = 0.125
    exact = forward_and_grads(reference_attention, *(t.double() for t in (q, k, v, grad_out)), True, scale)
    ours = forward_and_grads(ta.attention_triton, q, k, v, grad_out, True, scale)
    for mine, ref in zip(ours, exact, strict=True):
        assert max_abs_error(mine, ref) <= 1e-5


def test_harness_times_only_the_forward_launch(interpreter, monkeypatch):
    """The harness's call (Backend.prepare) checks and allocates once: repeated calls write one o."""
    spec = spec_for("attention")
    shape = spec.shape(1, 4, 2, 33, 97, 80, causal=True)
    inputs = spec.make_inputs(shape, torch.float16, "cpu", seed=2)
    launch = spec.bind(get("attention", "triton"), inputs)

    def no_set_up(*args):
        raise AssertionError("set-up inside the timed call")

    monkeypatch.setattr(ta, "_check", no_set_up)
    first, second = launch(), launch()
    assert first is second
    reference = spec.reference(inputs)
    torch_error = max_abs_error(get("attention", "torch").fn(*inputs.args, **inputs.kwargs), reference)
    assert max_abs_error(second, reference) <= tolerance(torch_error, reference, torch.float16)


def test_front_door_backward(interpreter):
    """zhisuan.kernels.attention(..., backend="triton") is differentiable: o.backward(g) fills q/k/v.grad."""
    q, k, v, grad_out = make_inputs((1, 4, 2, 17, 17, 64, True), torch.float32)
    q, k, v = (t.requires_grad_(True) for t in (q, k, v))
    kernels.attention(q, k, v, causal=True, backend="triton").backward(grad_out)
    exact = forward_and_grads(
        reference_attention, *(t.detach().double() for t in (q, k, v, grad_out)), True, 0.125
    )
    for t, ref in zip((q, k, v), exact[1:], strict=True):
        assert max_abs_error(t.grad, ref) <= 1e-5


def test_rejects_head_dim_over_256(interpreter):
    q = torch.randn(1, 1, 4, 257)
    with pytest.raises(ValueError, match="head_dim 257"):
        ta.attention_triton(q, q, q, causal=False, scale=1.0)


def test_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    q = torch.randn(1, 1, 4, 16)
    with pytest.raises(BackendUnavailable, match="TRITON_INTERPRET=1"):
        kernels.attention(q, q, q, backend="triton")


def test_registration():
    backend = get("attention", "triton")
    assert backend.differentiable
    assert backend.interpreted("cpu") and not backend.interpreted("cuda")


def test_head_dim_padding():
    padded = [ta.block_size_d(d) for d in (1, 16, 17, 64, 80, 128, 200, 256)]
    assert padded == [16, 16, 32, 64, 128, 128, 256, 256]


# ---- GPU -----------------------------------------------------------------------------------------

GPU_SHAPES = [
    (2, 8, 8, 1025, 1025, 64, False),
    (2, 8, 8, 1025, 1025, 128, True),
    (1, 8, 2, 513, 2049, 80, True),  # GQA, KV prefix, padded head_dim
    (1, 4, 4, 257, 257, 256, False),
    (1, 8, 2, 2049, 257, 128, True),  # rows that see no key
    (1, 16, 16, 4096, 4096, 128, True),
]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape", GPU_SHAPES, ids=shape_id)
def test_gpu(shape, dtype):
    check_case(shape, dtype, device="cuda")


@pytest.mark.gpu
def test_gpu_rejects_fp32():
    q = torch.randn(1, 1, 16, 64, device="cuda")
    with pytest.raises(TypeError, match="fp32 runs only under the interpreter"):
        ta.attention_triton(q, q, q, causal=False, scale=0.125)
