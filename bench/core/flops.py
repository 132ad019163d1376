"""The one canonical module of FLOP and byte counts.

matmul: 2·M·N·K (one multiply and one add per inner-product term).
attention forward (FlashAttention's convention): two matmuls, Q·Kᵀ and P·V, each 2·Sq·Sk·D per
head, so 4·B·Hq·Sq·Sk·D; softmax is not counted. With a causal mask only the visible (query, key)
pairs count — the average key length per query times Sq — which is ≈ half for Sq == Sk.
attention backward: 2.5× the forward (five matmuls against two), as FlashAttention counts.
"""

from __future__ import annotations


def matmul_flops(m: int, n: int, k: int) -> float:
    return 2.0 * m * n * k


def matmul_bytes(m: int, n: int, k: int, itemsize: int) -> float:
    """Minimum traffic: read A and B once, write C once."""
    return float(itemsize * (m * k + k * n + m * n))


def causal_pairs(seq_q: int, seq_k: int) -> int:
    """Visible (query, key) pairs under the bottom-right causal mask: query i sees j <= i + seq_k - seq_q."""
    offset = seq_k - seq_q
    total = 0
    # Rows split into: none visible (i + offset < 0), partially visible, and all visible (i + offset >= seq_k - 1).
    first_partial = max(0, -offset)
    first_full = max(first_partial, min(seq_q, seq_k - 1 - offset))
    # Partially visible rows see i + offset + 1 keys: an arithmetic series.
    count = first_full - first_partial
    if count > 0:
        lo = first_partial + offset + 1
        hi = first_full - 1 + offset + 1
        total += (lo + hi) * count // 2
    total += (seq_q - first_full) * seq_k
    return total


def attention_flops(
    batch: int, heads: int, seq_q: int, seq_k: int, head_dim: int, causal: bool, mode: str = "fwd"
) -> float:
    """FLOPs of attention; mode is 'fwd', 'bwd' or 'fwd+bwd'."""
    pairs = causal_pairs(seq_q, seq_k) if causal else seq_q * seq_k
    forward = 4.0 * batch * heads * pairs * head_dim
    factor = {"fwd": 1.0, "bwd": 2.5, "fwd+bwd": 3.5}
    if mode not in factor:
        raise ValueError(f"mode must be one of {', '.join(factor)}, got {mode!r}")
    return forward * factor[mode]


def attention_bytes(
    batch: int, heads: int, heads_kv: int, seq_q: int, seq_k: int, head_dim: int, itemsize: int
) -> float:
    """Minimum forward traffic: read Q, K, V once, write O once."""
    q_and_o = 2 * batch * heads * seq_q * head_dim
    k_and_v = 2 * batch * heads_kv * seq_k * head_dim
    return float(itemsize * (q_and_o + k_and_v))
