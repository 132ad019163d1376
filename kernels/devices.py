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
