"""A bring-your-own-kernel plugin for the gate's end-to-end tests and its real-run measurements.

Registered through the `zhisuan.backends` entry point (zhisuan_testwork-0.1.dist-info), so every
process that puts this folder on PYTHONPATH sees it, a `zhisuan run` worker included. Backend
`testwork` of matmul computes the product, then keeps the core busy (a spin on the clock) for
ZHISUAN_TESTWORK_EXTRA (default 0) times as long as the product took: 0.05 makes every call 5%
slower, whatever its size. (Extra matmul calls on a share of the rows, the plant before, cost their
fixed overhead on top: "5%" cost 12-27% on the 128^3 and 256^3 products.) A test-only backend: the
production kernels have no such knob.
"""

import os
import time

import torch

from zhisuan.kernels.registry import register

EXTRA = float(os.environ.get("ZHISUAN_TESTWORK_EXTRA", "0"))


@register("matmul", "testwork", devices=("cpu",), dtypes=(torch.float32,), description="test backend")
def matmul_testwork(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    start = time.perf_counter()
    out = torch.matmul(a, b)
    until = time.perf_counter() + EXTRA * (time.perf_counter() - start)
    while time.perf_counter() < until:
        pass
    return out
