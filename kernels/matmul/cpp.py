"""cpp backend of matmul: our C++ GEMM in kernels._C (csrc/cpu/gemm.cpp).

Purpose: a BLIS-style CPU GEMM written here, measured against torch's oneDNN/MKL.
When it wins: fp32/fp64 on x86 CPUs with AVX-512 or AVX2+FMA, large enough products to use all
cores (cache-blocked packed panels, register-tiled FMA micro-kernel picked at run time, OpenMP).

A and B are passed as (address, row stride, column stride): transposed or sliced views are read in
place by the packing step, never copied. The output is a new row-major tensor.
"""

from __future__ import annotations

import torch

from kernels._ext import cpu_ext, cpu_ext_missing
from kernels.registry import register

DTYPES = (torch.float32, torch.float64)


def cpp_missing(device_type: str) -> str | None:
    """None when kernels._C with its GEMM can run on device_type, else why not."""
    if device_type != "cpu":
        return f"cpp matmul runs on cpu only, not {device_type}"
    reason = cpu_ext_missing()
    if reason:
        return reason
    if not hasattr(cpu_ext(), "gemm_f32"):
        return "kernels._C was built without the GEMM; reinstall (pip install .)"
    return None


@register(
    "matmul",
    "cpp",
    devices=("cpu",),
    dtypes=DTYPES,
    probe=cpp_missing,
    priority=10,
    description="C++ BLIS-style GEMM (packed panels, AVX-512/AVX2 FMA micro-kernel, OpenMP)",
)
def matmul_cpp(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """C = A @ B through kernels._C; a (M, K), b (K, N) on cpu, any strides."""
    ext = cpu_ext()
    m, k = a.shape
    n = b.shape[1]
    c = torch.empty((m, n), dtype=a.dtype, device=a.device)
    gemm = ext.gemm_f32 if a.dtype == torch.float32 else ext.gemm_f64
    gemm(m, n, k, a.data_ptr(), *a.stride(), b.data_ptr(), *b.stride(), c.data_ptr(), n)
    return c


def isa() -> str:
    """Instruction set the GEMM micro-kernels use now: 'avx512', 'avx2' or 'scalar'."""
    return cpu_ext().gemm_isa()


def set_isa(name: str) -> None:
    """Force 'avx512', 'avx2' or 'scalar' (must run on this CPU), or 'auto' for the automatic choice."""
    cpu_ext().gemm_set_isa(name)


def set_threads(n: int) -> None:
    """Threads used by the GEMM; 0 restores OpenMP's default (all cores, or OMP_NUM_THREADS)."""
    cpu_ext().gemm_set_threads(n)


def threads() -> int:
    """Threads the GEMM uses now."""
    return cpu_ext().gemm_threads()
