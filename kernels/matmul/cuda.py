"""The CUDA C++ tensor-core matmul (csrc/cuda/matmul.cu in zhisuan.kernels._cuda), for CUDA tensors.

Purpose: the readable reference GEMM of the suite (mma.sync m16n8k16, ldmatrix, a 4-stage cp.async
pipeline), fp16 and bf16 with fp32 accumulation, measured against cuBLAS. It is the "cpp" matmul
backend's CUDA path: kernels/matmul/cpp.py registers "cpp" and sends CUDA tensors here.

The kernel reads A and B in place when each is row- or column-major with 16-byte aligned rows
(a transposed view is fine). Otherwise (a sliced view, or a leading dimension that is not a
multiple of 8 elements, such as K = 97) the operand is first copied into an aligned row-major
buffer: part of this backend's work, and counted in its time. The output is a new row-major tensor.
The launch goes on torch's current stream of the inputs' device.
"""

from __future__ import annotations

import torch

from zhisuan.kernels._ext import cuda_ext, cuda_ext_missing
from zhisuan.kernels.devices import nvidia_missing
from zhisuan.kernels.registry import BackendUnavailable

DTYPES = (torch.float16, torch.bfloat16)
ALIGN_BYTES = 16


def cuda_cpp_missing(device_type: str = "cuda") -> str | None:
    """None when the CUDA C++ GEMM can run on device_type, else why not."""
    if device_type != "cuda":
        return f"the CUDA C++ matmul runs on cuda, not {device_type}"
    reason = nvidia_missing("the CUDA C++ matmul") or cuda_ext_missing("gemm_f16", "the matmul")
    if reason:
        return reason
    major, minor = torch.cuda.get_device_capability()
    if major < 8:
        return f"the CUDA C++ matmul needs compute capability 8.0 or newer (bf16 mma.sync); this GPU is sm_{major}{minor}"
    return None


def _readable(t: torch.Tensor) -> torch.Tensor:
    """t itself when the kernel can read it in place, else a row-major copy with aligned rows."""
    problem = cuda_ext().gemm_operand_problem(
        t.data_ptr(), t.shape[0], t.shape[1], *t.stride(), t.element_size()
    )
    if not problem:
        return t
    per_row = ALIGN_BYTES // t.element_size()
    lead = -(-t.shape[1] // per_row) * per_row
    aligned = torch.empty((t.shape[0], lead), dtype=t.dtype, device=t.device)[:, : t.shape[1]]
    aligned.copy_(t)
    return aligned


def matmul_cuda(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """C = A @ B on the tensor cores through zhisuan.kernels._cuda; a (M, K), b (K, N) on one CUDA device."""
    if a.dtype not in DTYPES:
        raise TypeError(f"CUDA C++ matmul: dtype {a.dtype} not supported (fp16, bf16)")
    reason = cuda_cpp_missing(a.device.type)
    if reason:
        raise BackendUnavailable(f"matmul backend 'cpp' unavailable on {a.device.type}: {reason}")
    ext = cuda_ext()
    a, b = _readable(a), _readable(b)
    m, k = a.shape
    n = b.shape[1]
    c = torch.empty((m, n), dtype=a.dtype, device=a.device)
    gemm = ext.gemm_f16 if a.dtype == torch.float16 else ext.gemm_bf16
    with torch.cuda.device(a.device):
        stream = torch.cuda.current_stream(a.device).cuda_stream
        gemm(m, n, k, a.data_ptr(), *a.stride(), b.data_ptr(), *b.stride(), c.data_ptr(), c.stride(0), stream)
    return c
