"""ipc backend of all_reduce: one-shot and two-shot all-reduce over CUDA IPC buffers (zhisuan.kernels._cuda).

Checked on one H200 (2026-11-27, docs/benchmarks/h200.md): correct for 2-4 processes sharing the GPU
(tests/test_collectives_gpu.py). Its speed is unmeasured: on one GPU the processes' kernels time-slice,
and no machine with several GPUs has been lent yet.

Purpose: small and medium all-reduces among the GPUs of one node in one or two kernels, reading the
peers' memory directly over NVLink/PCIe, instead of NCCL's protocol machinery.
When it wins: latency-bound sizes (up to about a megabyte) on NVLink-connected GPUs. Messages larger
than HALF_BYTES go to torch.distributed's all_reduce (NCCL), whose rings use the bandwidth better:
that hand-over is this backend's design, not a fallback for an error.

Set-up, once per (process group, device) on the first call (a collective: every rank makes it):
each rank allocates its buffer and the IPC handles reach the others over the group; every rank
opens the others' buffers. Algorithms and barriers: csrc/cuda/ipc_allreduce.h. The reduction is
enqueued on torch's current stream of the tensor's device.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from zhisuan.kernels._ext import cuda_ext, cuda_ext_missing
from zhisuan.kernels.allreduce.groups import PerGroup
from zhisuan.kernels.allreduce.shm import host_id
from zhisuan.kernels.devices import nvidia_missing
from zhisuan.kernels.registry import dtype_name, get, register

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
HALF_BYTES = 8 << 20  # largest message on the IPC path (each rank's buffer holds two halves)
ONE_SHOT_MAX_BYTES = 256 << 10  # up to here every rank reduces everything (one barrier)
TIMEOUT_S = 60.0  # a barrier that waits longer traps its kernel (a CUDA error, not a hang)

_communicators = PerGroup()  # per (group, device index)


def _probe(device_type: str) -> str | None:
    missing = nvidia_missing("the CUDA IPC all-reduce") or cuda_ext_missing(
        "IpcAllReduce", "the IPC all-reduce"
    )
    if missing:
        return missing
    if not dist.is_initialized():
        return "no process group (call torch.distributed.init_process_group first)"
    return None


def communicator(group, device_index: int):
    """The IPC communicator of `group` on this device, made on first use."""
    return _communicators.get(group, lambda g: _connect(g, device_index), extra=device_index)


def _connect(group, device_index: int):
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    with torch.cuda.device(device_index):
        comm = cuda_ext().IpcAllReduce(rank, world, HALF_BYTES, ONE_SHOT_MAX_BYTES, TIMEOUT_S)
        infos: list = [None] * world
        dist.all_gather_object(infos, (host_id(), comm.handle()), group=group)
        hosts = sorted({host for host, _ in infos})
        if len(hosts) > 1:
            comm.close()
            raise RuntimeError(
                f"ipc all_reduce needs every rank of the group on one node; its {world} ranks are on "
                f"{len(hosts)} hosts: use the torch backend"
            )
        comm.open([handle for _, handle in infos])
    return comm


@register(
    "all_reduce",
    "ipc",
    devices=("cuda",),
    dtypes=DTYPES,
    probe=_probe,
    description="one-/two-shot all-reduce over CUDA IPC buffers within a node (CUDA C++; speed unmeasured: checked on one GPU only)",
)
def all_reduce_ipc(t: torch.Tensor, *, op: str, group=None) -> None:
    """All-reduce t in place: over the IPC buffers up to HALF_BYTES, through NCCL above."""
    if t.numel() * t.element_size() > HALF_BYTES:
        get("all_reduce", "torch").fn(t, op=op, group=group)
        return
    comm = communicator(group, t.device.index)
    ext = cuda_ext()
    # The extension's DType and ReduceOp members carry zhisuan's dtype and op names.
    kind, reduction = getattr(ext.DType, dtype_name(t.dtype)), getattr(ext.ReduceOp, op)
    stream = torch.cuda.current_stream(t.device).cuda_stream
    ptr = t.data_ptr()
    comm.all_reduce(ptr, ptr, t.numel(), kind, reduction, stream)
