"""STREAM's four kernels as torch operations, for any device torch runs on.

The accelerator path of the bandwidth check where no hand-written kernel runs: ROCm and Hygon
GPUs, Ascend NPUs, XPUs, and NVIDIA GPUs where numba.cuda cannot compile. Each kernel is one pass
of the device's own elementwise kernel, writing into an existing array:
    copy   c = a          Tensor.copy_
    scale  b = s * c      torch.mul(..., out=b)
    add    c = a + b      torch.add(..., out=c)
    triad  a = b + s * c  torch.add(b, c, alpha=s, out=a)
Bytes are counted as STREAM counts them (stream_cpu.BYTES_PER_ELEMENT, per 8-byte element).
Arrays are fp64 where the device computes in fp64 (zhisuan.bench.core.accel.float64_device), fp32
otherwise. The expected result of each kernel is computed on the CPU from the same values (an
independent computation, not the device checking itself), and the output is copied back to compare.
"""

from __future__ import annotations

import torch

from zhisuan.bench.core.accel import float64_device
from zhisuan.bench.validate.stream_cpu import BYTES_PER_ELEMENT


def stream_dtype(device: str) -> torch.dtype:
    """fp64 where the device has fp64 arithmetic (STREAM's own type), else fp32."""
    return torch.float64 if float64_device(device) == str(torch.device(device)) else torch.float32


class TorchStream:
    """Three arrays of n elements on device and the four kernels over them (STREAM's a, b, c)."""

    scalar = 3.0

    def __init__(self, n: int, device: str, dtype: torch.dtype):
        if n < 1:
            raise ValueError(f"STREAM array length must be at least 1, got {n}")
        self.n, self.dtype = n, dtype
        gen = torch.Generator().manual_seed(5)
        # In [1, 2): no zero to divide by in the relative error, no overflow in any kernel.
        host = [torch.rand(n, dtype=dtype, generator=gen) + 1.0 for _ in range(3)]
        self.a, self.b, self.c = (x.to(device) for x in host)

    def bytes(self, name: str) -> float:
        return BYTES_PER_ELEMENT[name] // 8 * self.dtype.itemsize * self.n

    def kernel(self, name: str):
        """The zero-argument callable of one kernel; it returns the array it wrote."""
        a, b, c, s = self.a, self.b, self.c, self.scalar
        return {
            "copy": lambda: c.copy_(a),
            "scale": lambda: torch.mul(c, s, out=b),
            "add": lambda: torch.add(a, b, out=c),
            "triad": lambda: torch.add(b, c, alpha=s, out=a),
        }[name]

    def expected(self, name: str) -> torch.Tensor:
        """What the kernel must write, computed on the CPU from the arrays' current values."""
        a, b, c = (x.cpu() for x in (self.a, self.b, self.c))
        s = self.scalar
        return {"copy": a.clone(), "scale": s * c, "add": a + b, "triad": b + s * c}[name]
