"""Device facts the backends' probes share.

torch's ROCm builds (AMD GPUs, Hygon DCUs) name their devices 'cuda': cuda_missing() is None there
too. Backends that need NVIDIA's own stack (CUDA C++ built by nvcc, cupy's CUDA wheels, CUDA IPC,
cuDNN, NVML) ask nvidia_missing(), which says so on a ROCm build. Triton's ROCm backend is probed
(the Triton that torch's ROCm build ships must be the one imported, with its HIP driver active),
never assumed; other accelerators (npu, xpu, ...) run torch's own backends only.
"""

from __future__ import annotations

import os
from functools import cache

import torch


@cache
def cuda_missing() -> str | None:
    """None when a CUDA device is usable from torch, else why not."""
    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return f"no CUDA device (torch {torch.__version__} is a CPU-only build)"
    if not torch.cuda.is_available():
        return "no CUDA device (torch.cuda.is_available() is False)"
    return None


def rocm_build() -> bool:
    """True on torch's ROCm (HIP) builds."""
    return getattr(torch.version, "hip", None) is not None


def nvidia_missing(what: str) -> str | None:
    """None when NVIDIA CUDA is usable from torch, else why `what` (a backend needing it) cannot run."""
    if rocm_build():
        return f"{what} needs NVIDIA CUDA; this torch is a ROCm (HIP {torch.version.hip}) build"
    return cuda_missing()


def triton_interpreter_on() -> bool:
    """TRITON_INTERPRET=1 runs Triton kernels on CPU tensors through the interpreter."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@cache
def triton_missing() -> str | None:
    try:
        import triton  # noqa: F401
    except ImportError as exc:
        return f"triton is not installed ({exc}); pip install 'zhisuan[triton]'"
    return None


def triton_stdlib_interpreted() -> bool:
    """True when triton was imported with TRITON_INTERPRET=1: @triton.jit picks its mode when it
    runs, so triton.language's own jit functions (tl.zeros, tl.max, ...) were then built for the
    interpreter, and no kernel calling them can be compiled for a GPU in this process."""
    import triton.language as tl
    from triton.runtime.jit import JITFunction

    return not isinstance(tl.zeros, JITFunction)


def triton_missing_on(device_type: str) -> str | None:
    """None when our Triton kernels can run on device_type here, else why not (matmul and attention)."""
    if device_type == "cpu":
        if not triton_interpreter_on():
            return "triton: no CUDA device (set TRITON_INTERPRET=1 to run the interpreter on CPU)"
        return triton_missing()
    if device_type != "cuda":
        return f"triton kernels here run on CUDA and ROCm GPUs, not on {device_type}"
    reason = cuda_missing() or triton_missing()
    if reason:
        return reason
    if rocm_build():
        return triton_hip_missing()
    if triton_stdlib_interpreted():
        return (
            "triton was imported with TRITON_INTERPRET=1, so its language library is built for the "
            "interpreter and kernels cannot compile for CUDA in this process; set TRITON_INTERPRET=1 "
            "only around CPU calls"
        )
    major, minor = torch.cuda.get_device_capability()
    if major < 8:
        return f"triton kernels here need compute capability 8.0 or newer (this GPU is sm_{major}{minor})"
    return None


@cache
def triton_hip_missing() -> str | None:
    """On a ROCm build: None when the imported Triton drives this GPU through its HIP backend (the
    Triton that torch's ROCm wheels ship), else why not. Our kernels' configs are the Ampere-class
    tiled ones there (no TMA, no fp8); they have never run on a ROCm GPU."""
    if triton_stdlib_interpreted():
        return (
            "triton was imported with TRITON_INTERPRET=1: its language library is built for the interpreter"
        )
    try:
        from triton.runtime import driver

        backend = driver.active.get_current_target().backend
    except Exception as exc:  # no HIP driver in this Triton, or the GPU cannot be reached
        return f"triton cannot reach this ROCm GPU ({type(exc).__name__}: {exc})"
    if backend != "hip":
        return (
            f"the imported triton targets {backend!r}, not 'hip' (install the Triton of torch's ROCm build)"
        )
    return None
