"""cupy-nccl backend of all_reduce: NCCL through cupy's communicator, outside torch.distributed.

Purpose: the same library as torch's NCCL backend, reached without torch.distributed in between,
so the difference between the two is torch's own overhead (work objects, stream bookkeeping).
When it wins: small messages, where that overhead is a visible share of the time.

The communicator is made once per (process group, device), on the first call (a collective: every
rank of the group makes it): rank 0 draws an NCCL unique id and the group's broadcast_object_list
hands it to the others. The reduction runs on torch's current stream of the tensor's device.
Needs cupy built with NCCL (pip install 'zhisuan[gpu]'); avg and bf16 need NCCL 2.10 or later.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from zhisuan.kernels.allreduce.groups import PerGroup
from zhisuan.kernels.devices import nvidia_missing
from zhisuan.kernels.registry import register

DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.int32)
# ncclDataType_t and ncclRedOp_t, as nccl.h numbers them (stable across NCCL 2.x)
_NCCL_DTYPES = {torch.int32: 2, torch.float16: 6, torch.float32: 7, torch.bfloat16: 9}
_NCCL_OPS = {"sum": 0, "max": 2, "min": 3, "avg": 4}

_communicators = PerGroup()  # per (group, device index)


def _nccl():
    from cupy.cuda import nccl

    return nccl


def _probe(device_type: str) -> str | None:
    missing = nvidia_missing("cupy NCCL")
    if missing:
        return missing
    try:
        nccl = _nccl()
    except ImportError as exc:
        return f"cupy with NCCL is not installed ({exc}); pip install 'zhisuan[gpu]'"
    if not getattr(nccl, "available", True):
        return "cupy was built without NCCL (cupy.cuda.nccl.available is False)"
    if not dist.is_initialized():
        return "no process group (call torch.distributed.init_process_group first)"
    return None


def communicator(group, device_index: int):
    """The NCCL communicator of `group` on this device, made on first use."""
    return _communicators.get(group, lambda g: _connect(g, device_index), extra=device_index)


def _connect(group, device_index: int):
    import cupy

    nccl = _nccl()
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    unique_id = [nccl.get_unique_id() if rank == 0 else None]
    dist.broadcast_object_list(unique_id, src=dist.get_global_rank(group, 0), group=group)
    with cupy.cuda.Device(device_index):
        return nccl.NcclCommunicator(world, unique_id[0], rank)


@register(
    "all_reduce",
    "cupy-nccl",
    devices=("cuda",),
    dtypes=DTYPES,
    probe=_probe,
    description="NCCL all-reduce through cupy's communicator (bypasses torch.distributed)",
)
def all_reduce_cupy_nccl(t: torch.Tensor, *, op: str, group=None) -> None:
    """All-reduce t in place with ncclAllReduce on torch's current stream."""
    comm = communicator(group, t.device.index)
    stream = torch.cuda.current_stream(t.device).cuda_stream
    ptr = t.data_ptr()
    comm.allReduce(ptr, ptr, t.numel(), _NCCL_DTYPES[t.dtype], _NCCL_OPS[op], stream)
