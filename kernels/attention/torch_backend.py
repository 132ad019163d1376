"""torch backend of attention: torch.nn.functional.scaled_dot_product_attention.

Purpose: the vendor baseline on any device torch runs on (on CUDA torch picks flash,
memory-efficient, cuDNN or math; on CPU its fused flash kernel; a plug-in's own fused kernel on
other accelerators, e.g. torch_npu's). Masks follow zhisuan.kernels.attention's bottom-right causal convention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zhisuan.kernels.devices import cuda_missing, nvidia_missing
from zhisuan.kernels.registry import ANY_DEVICE, register

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


def causal_mask(seq_q: int, seq_k: int, device: torch.device) -> torch.Tensor:
    """Boolean (seq_q, seq_k) mask, True where query i may see key j: j <= i + seq_k - seq_q."""
    rows = torch.arange(seq_q, device=device)[:, None]
    cols = torch.arange(seq_k, device=device)[None, :]
    return cols <= rows + (seq_k - seq_q)


@register(
    "attention",
    "torch",
    devices=(ANY_DEVICE,),
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


# ---- torch's SDPA kernels one by one (CUDA; ROCm builds have flash and efficient, not cuDNN) -------
# The "torch" backend lets torch choose; these pin one of its kernels, so a run shows each of them
# side by side (flash, memory-efficient, cuDNN). A kernel that cannot take the inputs raises, and
# the runner reports that as the backend's error for that shape.


def _pinned_sdpa(kernel_name: str):
    def run(q, k, v, *, causal: bool, scale: float) -> torch.Tensor:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel(getattr(SDPBackend, kernel_name)):
            return attention_torch(q, k, v, causal=causal, scale=scale)

    return run


for _name, _kernel, _dtypes, _probe in (
    ("sdpa-flash", "FLASH_ATTENTION", [torch.float16, torch.bfloat16], lambda device_type: cuda_missing()),
    (
        "sdpa-efficient",
        "EFFICIENT_ATTENTION",
        [torch.float32, torch.float16, torch.bfloat16],
        lambda device_type: cuda_missing(),
    ),
    (
        "sdpa-cudnn",
        "CUDNN_ATTENTION",
        [torch.float16, torch.bfloat16],
        lambda device_type: nvidia_missing("cuDNN attention"),
    ),
):
    register(
        "attention",
        _name,
        devices=("cuda",),
        dtypes=_dtypes,
        probe=_probe,
        differentiable=True,
        description=f"torch scaled_dot_product_attention pinned to its {_kernel.lower()} kernel",
    )(_pinned_sdpa(_kernel))
