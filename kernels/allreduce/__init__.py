"""all_reduce: reduce a tensor across the processes of a torch.distributed group, in place."""

from __future__ import annotations

import torch

from zhisuan.kernels import checks, registry
from zhisuan.kernels.allreduce import cupy_nccl, ipc, shm, torch_backend  # noqa: F401  (registration side effect)

REDUCE_OPS = ("sum", "max", "min", "avg")


def checked_backend(t: torch.Tensor, op: str, backend: str | None) -> registry.Backend:
    """The front door's checks of (t, op) and the backend all_reduce would run t on."""
    checks.require_tensor("all_reduce", "t", t)
    if op not in REDUCE_OPS:
        raise ValueError(f"all_reduce: op must be one of {', '.join(REDUCE_OPS)}, got {op!r}")
    if not t.is_contiguous():
        raise ValueError(f"all_reduce: t must be contiguous (it is reduced in place), strides {t.stride()}")
    return registry.select("all_reduce", t.device.type, t.dtype, backend)


def all_reduce(t: torch.Tensor, op: str = "sum", *, backend: str | None = None, group=None) -> torch.Tensor:
    """Reduce t in place over `group` (default: the default process group); returns t."""
    checked_backend(t, op, backend).fn(t, op=op, group=group)
    return t
