"""attention: softmax(Q Kᵀ · scale [+ causal mask]) V, the forward pass of multi-head attention.

Shapes: q (batch, heads_q, seq_q, head_dim); k and v (batch, heads_kv, seq_k, head_dim), with
heads_q a multiple of heads_kv (grouped-query attention: query head h reads kv head
h // (heads_q // heads_kv)).

Causal masking is aligned to the bottom-right corner, as in FlashAttention 2.1+: query i sees keys
j <= i + (seq_k - seq_q). With seq_q == seq_k that is the usual lower triangle; with a KV cache
(seq_q < seq_k) the last query sees every key. A query row that sees no key at all (seq_q > seq_k)
has output 0.
"""

from __future__ import annotations

import math

import torch

from zhisuan.kernels import checks, registry
from zhisuan.kernels.attention import cpp, torch_backend, triton  # noqa: F401  (registration side effect)


def check_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        checks.require_tensor("attention", name, t)
        checks.require_rank("attention", name, t, 4, "(batch, heads, seq, head_dim)")
    checks.require_same_dtype("attention", q=q, k=k, v=v)
    checks.require_same_device("attention", q=q, k=k, v=v)
    if k.shape != v.shape:
        raise ValueError(
            f"attention: k and v must have one shape, got k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if q.shape[0] != k.shape[0]:
        raise ValueError(f"attention: batch differs: q {tuple(q.shape)}, k {tuple(k.shape)}")
    if q.shape[3] != k.shape[3]:
        raise ValueError(f"attention: head_dim differs: q {tuple(q.shape)}, k {tuple(k.shape)}")
    if k.shape[1] == 0 or q.shape[1] % k.shape[1] != 0:
        raise ValueError(
            f"attention: q heads ({q.shape[1]}) must be a multiple of k/v heads ({k.shape[1]}) "
            f"for grouped-query attention; q {tuple(q.shape)}, k {tuple(k.shape)}"
        )
    if q.shape[3] == 0:
        raise ValueError(f"attention: head_dim must be at least 1, got q {tuple(q.shape)}")


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    scale: float | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Attention forward with the named backend, or the best available one; scale defaults to 1/sqrt(d)."""
    check_inputs(q, k, v)
    chosen = registry.select("attention", q.device.type, q.dtype, backend)
    scale = 1.0 / math.sqrt(q.shape[3]) if scale is None else float(scale)
    if q.numel() == 0 or k.shape[2] == 0:
        # No queries, or no keys to attend to: every output row is defined as 0.
        return torch.zeros_like(q)
    return chosen.fn(q, k, v, causal=causal, scale=scale)
