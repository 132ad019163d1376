"""A bring-your-own-kernel plugin for the gate's end-to-end tests and its real-run measurements.

Registered through the `zhisuan.backends` entry point (zhisuan_testwork-0.1.dist-info), so every
process that puts this folder on PYTHONPATH sees it, a `zhisuan run` worker included. Backend
`testwork` of matmul computes the product and then ZHISUAN_TESTWORK_EXTRA (default 0) times as much
again on the leading rows of A: 0.3 does 30% more work. A test-only backend: the production kernels
have no such knob.
"""

import os

import torch

from zhisuan.kernels.registry import register

EXTRA = float(os.environ.get("ZHISUAN_TESTWORK_EXTRA", "0"))


@register("matmul", "testwork", devices=("cpu",), dtypes=(torch.float32,), description="test backend")
def matmul_testwork(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    whole, part = divmod(EXTRA, 1.0)
    for _ in range(int(whole)):
        torch.matmul(a, b)
    rows = round(part * a.shape[0])
    if rows:
        torch.matmul(a[:rows], b)
    return torch.matmul(a, b)
