"""cpp backend of matmul: our C++ GEMMs, the CPU one in zhisuan.kernels._C (csrc/cpu/gemm.cpp) and, for
CUDA tensors, the tensor-core one in zhisuan.kernels._cuda (kernels/matmul/cuda.py).

Purpose: a BLIS-style CPU GEMM written here, measured against torch's oneDNN/MKL.
When it wins: fp32/fp64 on x86 CPUs with AVX-512 or AVX2+FMA, large enough products to use all
cores (cache-blocked packed panels, register-tiled FMA micro-kernel picked at run time, OpenMP).
On CUDA: fp16/bf16 (see kernels/matmul/cuda.py).

A and B are passed as (address, row stride, column stride): transposed or sliced views are read in
place by the packing step, never copied. The output is a new row-major tensor.
"""

from __future__ import annotations

import torch

from zhisuan.kernels._ext import cpu_ext, cpu_ext_missing
from zhisuan.kernels.matmul.cuda import DTYPES as CUDA_DTYPES
from zhisuan.kernels.matmul.cuda import cuda_cpp_missing, matmul_cuda
from zhisuan.kernels.registry import register

DTYPES = (torch.float32, torch.float64)


def cpp_missing(device_type: str) -> str | None:
    """None when our C++ GEMM for device_type (zhisuan.kernels._C on cpu, zhisuan.kernels._cuda on cuda) can run."""
    if device_type == "cuda":
        return cuda_cpp_missing(device_type)
    if device_type != "cpu":
        return f"cpp matmul runs on cpu and cuda, not {device_type}"
    return cpu_ext_missing("gemm_f32", "the GEMM")


@register(
    "matmul",
    "cpp",
    devices=("cpu", "cuda"),
    dtypes={"cpu": DTYPES, "cuda": CUDA_DTYPES},
    probe=cpp_missing,
    priority=10,
    description="C++ GEMM: BLIS-style on cpu (AVX-512/AVX2 FMA, OpenMP); mma.sync tensor cores on cuda",
)
def matmul_cpp(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """C = A @ B through zhisuan.kernels._C (cpu) or zhisuan.kernels._cuda (cuda); a (M, K), b (K, N), any strides."""
    if a.is_cuda:
        return matmul_cuda(a, b)
    if a.dtype not in DTYPES:
        raise TypeError(f"cpp matmul on cpu: dtype {a.dtype} not supported (fp32, fp64)")
    ext = cpu_ext()
    m, k = a.shape
    n = b.shape[1]
    c = torch.empty((m, n), dtype=a.dtype, device=a.device)
    gemm = ext.gemm_f32 if a.dtype == torch.float32 else ext.gemm_f64
    gemm(m, n, k, a.data_ptr(), *a.stride(), b.data_ptr(), *b.stride(), c.data_ptr(), n)
    return c


def isa() -> str:
    """Instruction-set level the GEMM micro-kernels use now: 'avx512', 'avx2' or 'portable'."""
    return cpu_ext().gemm_isa()


def set_isa(name: str) -> None:
    """Force a level this CPU runs ('avx512', 'avx2' or 'portable'), or 'auto' for the widest."""
    cpu_ext().gemm_set_isa(name)


def set_threads(n: int) -> None:
    """Threads used by the GEMM; 0 restores OpenMP's default (all cores, or OMP_NUM_THREADS)."""
    cpu_ext().gemm_set_threads(n)


def threads() -> int:
    """Threads the GEMM uses now."""
    return cpu_ext().gemm_threads()
