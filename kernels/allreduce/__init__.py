"""all_reduce: reduce a tensor across the processes of a torch.distributed group, in place or into out.

A backend is fn(t, *, op, group=None), in place; one that can also write the result elsewhere takes
`out=` as well (t then stays unchanged). For the others, out-of-place is a copy into out and then
the in-place call (`out_of_place` picks, once).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

from zhisuan.kernels import checks, registry
from zhisuan.kernels.allreduce import cupy_nccl, ipc, mpi, shm, torch_backend  # noqa: F401  (registration side effect)

REDUCE_OPS = ("sum", "max", "min", "avg")


def checked_backend(t: torch.Tensor, op: str, backend: str | None) -> registry.Backend:
    """The front door's checks of (t, op) and the backend all_reduce would run t on."""
    checks.require_tensor("all_reduce", "t", t)
    if op not in REDUCE_OPS:
        raise ValueError(f"all_reduce: op must be one of {', '.join(REDUCE_OPS)}, got {op!r}")
    if not t.is_contiguous():
        raise ValueError(f"all_reduce: t must be contiguous (it is reduced in place), strides {t.stride()}")
    return registry.select("all_reduce", t.device.type, t.dtype, backend)


def check_out(t: torch.Tensor, out: torch.Tensor) -> None:
    """out must be able to take t's reduction: same shape, dtype and device, contiguous, apart from t."""
    checks.require_tensor("all_reduce", "out", out)
    if out.shape != t.shape or out.dtype != t.dtype or out.device != t.device:
        raise ValueError(
            f"all_reduce: out must match t (shape {tuple(t.shape)}, {t.dtype}, {t.device}), got shape "
            f"{tuple(out.shape)}, {out.dtype}, {out.device}"
        )
    if not out.is_contiguous():
        raise ValueError(f"all_reduce: out must be contiguous, strides {out.stride()}")
    t_end, out_end = t.data_ptr() + t.nbytes, out.data_ptr() + out.nbytes
    if out.data_ptr() < t_end and t.data_ptr() < out_end:
        raise ValueError("all_reduce: out overlaps t (for in place, leave out unset)")


def out_of_place(fn: Callable) -> Callable:
    """fn's out-of-place form, call(t, out, op=, group=): its own where it takes `out`, else copy first."""
    if "out" in inspect.signature(fn).parameters:

        def native(t, out, *, op, group=None):
            fn(t, op=op, group=group, out=out)

        return native

    def copy_first(t, out, *, op, group=None):
        out.copy_(t)
        fn(out, op=op, group=group)

    return copy_first


def all_reduce(
    t: torch.Tensor,
    op: str = "sum",
    *,
    backend: str | None = None,
    group=None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reduce t over `group` (default: the default process group): in place, returning t, or into
    out (t unchanged), returning out."""
    chosen = checked_backend(t, op, backend)
    if out is None:
        chosen.fn(t, op=op, group=group)
        return t
    check_out(t, out)
    out_of_place(chosen.fn)(t, out, op=op, group=group)
    return out
