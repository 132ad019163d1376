"""OpSpec of matmul: C = A (M, K) @ B (K, N)."""

from __future__ import annotations

import re

import torch

from zhisuan.bench.core import flops
from zhisuan.bench.core.errors import UsageError
from zhisuan.bench.workloads.base import Inputs, OpSpec, generator, negate_, random_tensor


class MatmulSpec(OpSpec):
    name = "matmul"
    flippable = True
    shape_help = "MxNxK (e.g. 1024x1024x1024), or one number N for a square N×N×N product"

    def parse_shape(self, text: str) -> list[dict]:
        parts = re.split(r"[x×,]", text.strip().lower())
        if not all(p.isdigit() for p in parts) or len(parts) not in (1, 3):
            raise UsageError(f"matmul shape {text!r}: expected {self.shape_help}")
        m, n, k = (int(parts[0]),) * 3 if len(parts) == 1 else map(int, parts)
        shape = {"M": m, "N": n, "K": k}
        self.check_shape(shape)
        return [shape]

    def make_inputs(self, shape: dict, dtype: torch.dtype, device: str, seed: int) -> Inputs:
        gen = generator(device, seed)
        # Uniform in [-1, 1): sums of K terms stay near sqrt(K), far from fp16/bf16 overflow.
        a = random_tensor((shape["M"], shape["K"]), dtype, device, gen)
        b = random_tensor((shape["K"], shape["N"]), dtype, device, gen)
        return Inputs((a, b), {})

    def reference(self, inputs: Inputs) -> torch.Tensor:
        a, b = inputs.args
        return a.to(torch.float64) @ b.to(torch.float64)

    def flip(self, inputs: Inputs) -> None:
        negate_(inputs.args[0])  # (-A) @ B = -(A @ B), exactly

    def memory_bytes(self, shape: dict, itemsize: int, copies: int = 1) -> int:
        m, n, k = shape["M"], shape["N"], shape["K"]
        elements = m * k + k * n + m * n  # A, B and C
        return copies * elements * itemsize + elements * 8  # and the float64 copies of all three

    def flops(self, shape: dict) -> float:
        return flops.matmul_flops(shape["M"], shape["N"], shape["K"])

    def bytes(self, shape: dict, itemsize: int) -> float:
        return flops.matmul_bytes(shape["M"], shape["N"], shape["K"], itemsize)
