"""torch backend of all_reduce: torch.distributed.all_reduce over the group's backend (NCCL on CUDA,
RCCL behind "nccl" on ROCm, HCCL on Ascend, gloo on CPU).

Purpose: the baseline every other all-reduce is measured against.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from zhisuan.kernels.registry import ANY_DEVICE, register

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.int32, torch.float64, torch.int64]
_OPS = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}


def _probe(device_type: str) -> str | None:
    if not dist.is_available():
        return "torch.distributed is not available in this torch build"
    if not dist.is_initialized():
        return "no process group (call torch.distributed.init_process_group first)"
    return None


@register("all_reduce", "torch", devices=(ANY_DEVICE,), dtypes=DTYPES, probe=_probe, baseline=True)
def all_reduce_torch(t: torch.Tensor, *, op: str, group=None) -> None:
    """torch.distributed.all_reduce over the group's backend (NCCL, gloo, HCCL)."""
    if op == "avg":
        # gloo has no AVG: sum, then divide (integer tensors use floor division).
        dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group)
        size = dist.get_world_size(group)
        if t.is_floating_point():
            t.div_(size)
        else:
            t.floor_divide_(size)
        return
    dist.all_reduce(t, op=_OPS[op], group=group)
