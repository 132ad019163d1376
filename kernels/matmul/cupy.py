"""cupy backend of matmul: cupy.matmul (cuBLAS), a vendor baseline that does not go through torch.

Purpose: a second view of cuBLAS beside torch.matmul, reached through another library's bindings
(and so another choice of cuBLAS call and settings). The torch tensors are handed to cupy without
a copy (DLPack), and cupy works on torch's current stream of the inputs' device, so the product
is ordered after whatever torch queued there. CuPy has no bfloat16: fp16, fp32 and fp64 only.
fp32 is full fp32 unless CUPY_TF32=1 is set in the environment (cupy's own switch).
"""

from __future__ import annotations

import functools

import torch

from zhisuan.kernels.devices import nvidia_missing
from zhisuan.kernels.registry import register

DTYPES = (torch.float16, torch.float32, torch.float64)


@functools.cache
def cupy_missing() -> str | None:
    """None when cupy can be imported, else why not."""
    try:
        import cupy  # noqa: F401
    except ImportError as exc:
        return f"cupy is not installed ({exc}); pip install 'zhisuan[gpu]' (a cupy-cuda12x/13x wheel)"
    except Exception as exc:  # cupy present but its CUDA libraries unusable
        return f"cupy cannot be imported ({type(exc).__name__}: {exc})"
    return None


def cupy_missing_on(device_type: str) -> str | None:
    if device_type != "cuda":
        return f"cupy runs on cuda, not {device_type}"
    return nvidia_missing("cupy (CUDA wheels)") or cupy_missing()


@register(
    "matmul",
    "cupy",
    devices=("cuda",),
    dtypes=DTYPES,
    probe=cupy_missing_on,
    description="cupy.matmul (cuBLAS through cupy), zero-copy from torch via DLPack",
)
def matmul_cupy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """C = A @ B with cupy.matmul on zero-copy views of the torch tensors, on torch's current stream."""
    import cupy

    c = torch.empty((a.shape[0], b.shape[1]), dtype=a.dtype, device=a.device)
    stream = torch.cuda.current_stream(a.device)
    with cupy.cuda.Device(a.device.index), cupy.cuda.ExternalStream(stream.cuda_stream):
        # from_dlpack asks torch for the buffers on cupy's current stream, which is torch's own:
        # no synchronisation is needed and none is inserted.
        cupy.matmul(cupy.from_dlpack(a), cupy.from_dlpack(b), out=cupy.from_dlpack(c))
    return c
