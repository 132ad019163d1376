"""all_reduce: reduce a tensor across the processes of a torch.distributed group, in place or into out.

A backend is fn(t, *, op, group=None), in place; one that can also write the result elsewhere takes
`out=` as well (t then stays unchanged). For the others, out-of-place is a copy into out and then
the in-place call. A backend may also register prepare(t, *, op, group=None[, out=None]) (the
registry's Backend.prepare): a zero-argument call with its per-call work (finding the group's
communicator, the buffers' addresses) done once, for loops that call it many times on the same
buffers, as nccl-tests calls ncclAllReduce with a communicator it made beforehand (shm, mpi).
"""

from __future__ import annotations

import inspect

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


def bind(backend: registry.Backend, t: torch.Tensor, *, op: str, group=None, out: torch.Tensor | None = None):
    """The backend's call on these buffers as a zero-argument callable (t and out: checked already).

    Backend.bind (its prepare where it has one); out of place, through the backend's `out` where it
    takes one, else as a copy of t into out and the in-place call on out.
    """
    if out is None:
        return backend.bind(t, op=op, group=group)
    if "out" in inspect.signature(backend.fn).parameters:
        return backend.bind(t, op=op, group=group, out=out)
    fn = backend.fn

    def copy_first():
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
    bind(chosen, t, op=op, group=group, out=out)()
    return out
