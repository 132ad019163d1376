"""Device facts the backends' probes share."""

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
        return f"triton does not run on {device_type}"
    reason = cuda_missing() or triton_missing()
    if reason:
        return reason
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
