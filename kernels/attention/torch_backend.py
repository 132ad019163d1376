"""torch backend of attention: torch.nn.functional.scaled_dot_product_attention.

Purpose: the vendor baseline (on CUDA torch picks flash, memory-efficient, cuDNN or math; on CPU
its fused flash kernel). Masks follow zhisuan.kernels.attention's bottom-right causal convention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zhisuan.kernels.devices import cuda_missing
from zhisuan.kernels.registry import register

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


def causal_mask(seq_q: int, seq_k: int, device: torch.device) -> torch.Tensor:
    """Boolean (seq_q, seq_k) mask, True where query i may see key j: j <= i + seq_k - seq_q."""
    rows = torch.arange(seq_q, device=device)[:, None]
    cols = torch.arange(seq_k, device=device)[None, :]
    return cols <= rows + (seq_k - seq_q)


@register(
    "attention",
    "torch",
    devices=("cpu", "cuda"),
    dtypes=DTYPES,
    baseline=True,
    priority=0,
    differentiable=True,
)
def attention_torch(q, k, v, *, causal: bool, scale: float) -> torch.Tensor:
    """torch scaled_dot_product_attention (flash / efficient / cuDNN / math, torch's choice)."""
    seq_q, seq_k = q.shape[2], k.shape[2]
    gqa = q.shape[1] != k.shape[1]
    if not causal:
        return F.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=gqa)
    if seq_q == seq_k:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=gqa)
    if seq_q > seq_k:
        # The first seq_q - seq_k rows see no key (output 0); the rest form a square causal block.
        # Computed apart, rather than masked, so no NaN row ever reaches softmax or its backward.
        skipped = seq_q - seq_k
        tail = F.scaled_dot_product_attention(
            q[:, :, skipped:], k, v, is_causal=True, scale=scale, enable_gqa=gqa
        )
        return torch.cat([tail.new_zeros(*q.shape[:2], skipped, v.shape[3]), tail], dim=2)
    mask = causal_mask(seq_q, seq_k, q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=gqa)


# ---- torch's SDPA kernels one by one (CUDA) ------------------------------------------------------
# The "torch" backend lets torch choose; these pin one of its kernels, so a run shows each of them
# side by side (flash, memory-efficient, cuDNN). A kernel that cannot take the inputs raises, and
# the runner reports that as the backend's error for that shape.


def _pinned_sdpa(kernel_name: str):
    def run(q, k, v, *, causal: bool, scale: float) -> torch.Tensor:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel(getattr(SDPBackend, kernel_name)):
            return attention_torch(q, k, v, causal=causal, scale=scale)

    return run


for _name, _kernel, _dtypes in (
    ("sdpa-flash", "FLASH_ATTENTION", [torch.float16, torch.bfloat16]),
    ("sdpa-efficient", "EFFICIENT_ATTENTION", [torch.float32, torch.float16, torch.bfloat16]),
    ("sdpa-cudnn", "CUDNN_ATTENTION", [torch.float16, torch.bfloat16]),
):
    register(
        "attention",
        _name,
        devices=("cuda",),
        dtypes=_dtypes,
        probe=lambda device_type: cuda_missing(),
        differentiable=True,
        description=f"torch scaled_dot_product_attention pinned to its {_kernel.lower()} kernel",
    )(_pinned_sdpa(_kernel))
