"""torch backend of matmul: torch.matmul (cuBLAS / cuBLASLt on CUDA, oneDNN/MKL on CPU).

Purpose: the vendor baseline every other matmul is measured against.
"""

from __future__ import annotations

import torch

from zhisuan.kernels.registry import register

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


@register("matmul", "torch", devices=("cpu", "cuda"), dtypes=DTYPES, baseline=True, priority=0)
def matmul_torch(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """torch.matmul (cuBLAS on CUDA, oneDNN/MKL on CPU)."""
    return torch.matmul(a, b)
