"""torch backend of matmul: torch.matmul (cuBLAS / cuBLASLt on CUDA, hipBLASLt / rocBLAS on ROCm,
the vendor plug-in's kernels on other accelerators (Ascend's through torch_npu), oneDNN/MKL on CPU).

Purpose: the vendor baseline every other matmul is measured against, on any device torch runs on.
"""

from __future__ import annotations

import torch

from zhisuan.kernels.registry import ANY_DEVICE, register

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


@register("matmul", "torch", devices=(ANY_DEVICE,), dtypes=DTYPES, baseline=True, priority=0)
def matmul_torch(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """torch.matmul (the vendor library of the device: cuBLAS, hipBLASLt, Ascend's, oneDNN/MKL)."""
    return torch.matmul(a, b)
