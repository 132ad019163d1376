"""OpSpec of matmul: C = A (M, K) @ B (K, N).

fp8 has its own tolerance. Its output is fp8 too (3 mantissa bits in e4m3), torch has no fp8
matmul to serve as a baseline, and the generic floor (4 ulp × max|C|) would accept an error of half
the largest output. The bound comes from the arithmetic instead, as in `zhisuan validate`
(zhisuan.bench.validate.tolerance.matmul_tolerance): half an fp8 ulp of the largest output (the
one rounding of the result, 2^-4 × max|C| in e4m3) plus the probabilistic bound of summing K exact
fp8 products in fp32. The output's rounding dominates: the check catches wrong tiles, masks or
layouts, not the accumulator's precision, which no fp8 output can show (the fp8 kernels' fp32
accumulation is checked in their PTX instead: tests/test_triton_compile.py).
"""

from __future__ import annotations

import re

import torch

from zhisuan.bench.core import flops
from zhisuan.bench.core.errors import UsageError
from zhisuan.bench.validate.tolerance import describe, matmul_tolerance
from zhisuan.bench.workloads.base import Inputs, OpSpec, generator, negate_, random_tensor

FP8_DTYPES = frozenset(
    getattr(torch, name) for name in ("float8_e4m3fn", "float8_e5m2") if hasattr(torch, name)
)


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

    def tolerance(self, inputs, reference, baseline_error, dtype, math_dtype) -> tuple[float, str]:
        if dtype not in FP8_DTYPES:
            return super().tolerance(inputs, reference, baseline_error, dtype, math_dtype)
        a, b = inputs.args
        # Exact fp8 products summed in fp32 (UNIT_ROUNDOFF of fp8e4m3 there is fp32's).
        return matmul_tolerance(a, b, reference, "fp8e4m3", dtype), describe("matmul")

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
