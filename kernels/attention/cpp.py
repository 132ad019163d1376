"""cpp backend of attention: our fused C++ kernel in zhisuan.kernels._C (csrc/cpu/attention.cpp).

Purpose: FlashAttention-2-style attention forward on the CPU, measured against torch's fused
scaled_dot_product_attention. Tiled with an online softmax (the full score matrix never exists),
causal (bottom-right aligned) and not, grouped-query heads, any sequence length and head_dim.
When it wins: fp32 on x86 CPUs with AVX-512 (or AVX2+FMA), sequences long enough to give every core
several blocks of 64 queries; causal masks skip the hidden key blocks.

q, k and v are passed as (address, strides): transposed or sliced views are read in place (k and v
are packed once, inside the kernel, only when their rows are not contiguous). The output is a new
contiguous tensor. `attention_with_lse` also returns the log-sum-exp of every query row, the
statistic a backward pass needs.
"""

from __future__ import annotations

import math

import torch

from zhisuan.kernels._ext import cpu_ext, cpu_ext_missing
from zhisuan.kernels.registry import BackendUnavailable, get, register


def cpp_missing(device_type: str) -> str | None:
    """None when zhisuan.kernels._C with its attention kernel can run on device_type, else why not."""
    if device_type != "cpu":
        return f"cpp attention runs on cpu only, not {device_type}"
    return cpu_ext_missing("attention_f32", "the attention kernel")


def _run(q, k, v, causal: bool, scale: float, lse: torch.Tensor | None, isa: str) -> torch.Tensor:
    batch, heads_q, seq_q, head_dim = q.shape
    heads_kv, seq_k = k.shape[1], k.shape[2]
    o = torch.empty((batch, heads_q, seq_q, head_dim), dtype=q.dtype, device=q.device)
    cpu_ext().attention_f32(
        q.data_ptr(),
        k.data_ptr(),
        v.data_ptr(),
        o.data_ptr(),
        0 if lse is None else lse.data_ptr(),
        batch,
        heads_q,
        heads_kv,
        seq_q,
        seq_k,
        head_dim,
        q.stride(),
        k.stride(),
        v.stride(),
        causal,
        scale,
        isa,
    )
    return o


@register(
    "attention",
    "cpp",
    devices=("cpu",),
    dtypes=(torch.float32,),
    probe=cpp_missing,
    priority=10,
    description="C++ fused attention (online softmax, AVX-512/AVX2 micro-kernels, OpenMP)",
)
def attention_cpp(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool, scale: float
) -> torch.Tensor:
    """softmax(q kᵀ · scale [+ causal mask]) v through zhisuan.kernels._C; fp32 on cpu, any strides."""
    return _run(q, k, v, causal, scale, None, "auto")


def attention_with_lse(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    scale: float | None = None,
    isa: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(o, lse): the attention output and the natural-log log-sum-exp of each query row's scaled,
    masked scores, (batch, heads_q, seq_q) float32; -inf (and o = 0) for a row that sees no key.

    isa picks the instruction-set level: 'auto' (the widest this CPU runs) or one of isas(); the
    front door's input checks apply.
    """
    from zhisuan.kernels.attention import check_inputs  # the package imports this module: import lazily

    check_inputs(q, k, v)
    reason = get("attention", "cpp").why_not(q.device.type, q.dtype)
    if reason:
        raise BackendUnavailable(f"attention backend 'cpp' unavailable: {reason}")
    scale = 1.0 / math.sqrt(q.shape[3]) if scale is None else float(scale)
    lse = torch.full(q.shape[:3], -math.inf, dtype=torch.float32, device=q.device)
    if q.numel() == 0 or k.shape[2] == 0:
        return torch.zeros_like(q), lse
    return _run(q, k, v, causal, scale, lse, isa), lse


def isas() -> list[str]:
    """Instruction-set levels this CPU runs, widest first (a subset of 'avx512', 'avx2', 'portable')."""
    return list(cpu_ext().isas())
