"""shm backend of all_reduce: POSIX shared memory among the processes of one host (C++, zhisuan.kernels._C).

Purpose: all-reduce of CPU tensors between processes of one machine without the TCP loopback that
gloo goes through: the ranks meet in one shared segment and synchronise on flags in it.
When it wins: at every size on one host; small messages by the most (no sockets, no copies through
the kernel). It does not span hosts: the set-up refuses a group whose ranks are on several hosts.

The segment is set up once per process group, on the first call (a collective: every rank of the
group must make it), over the group itself: rank 0 creates a uniquely named segment and the name
reaches the others with the group's all_gather_object; rank 0 removes the name from /dev/shm as
soon as every rank has mapped it. Algorithms and barriers: csrc/cpu/shm_allreduce.h.
"""

from __future__ import annotations

import atexit
import os
import secrets
import socket

import torch
import torch.distributed as dist

from zhisuan.kernels._ext import cpu_ext, cpu_ext_missing
from zhisuan.kernels.allreduce.groups import PerGroup
from zhisuan.kernels.registry import dtype_name, register

DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.int32)

# Per rank and buffer set; the segment holds 2 * world slots. Messages larger than a slot go
# through it in chunks. 1 MiB keeps a chunk in L2 between its copy-in and its reduction.
SLOT_BYTES = 1 << 20
# Chunks up to this size take the one-shot path (every rank reduces everything: one barrier);
# larger ones reduce-scatter and all-gather (each rank reduces 1/world of it: two barriers).
ONE_SHOT_MAX_BYTES = 32 << 10
DEFAULT_TIMEOUT_S = 300.0

_timeout_s = DEFAULT_TIMEOUT_S
_communicators = PerGroup()


def _probe(device_type: str) -> str | None:
    missing = cpu_ext_missing("ShmAllReduce", "the shared-memory all-reduce")
    if missing:
        return missing
    if not dist.is_available():
        return "torch.distributed is not available in this torch build"
    if not dist.is_initialized():
        return "no process group (call torch.distributed.init_process_group first)"
    return None


def set_timeout(seconds: float) -> None:
    """How long a rank waits for the others at a barrier before raising (names the missing ranks)."""
    global _timeout_s
    if not seconds > 0:
        raise ValueError(f"shm all_reduce: timeout must be positive, got {seconds!r}")
    _timeout_s = float(seconds)
    for comm in _communicators.values():
        comm.timeout = _timeout_s


def host_id() -> str:
    """Same string on every process of one host (and boot), different across hosts."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            boot = fh.read().strip()
    except OSError:
        boot = "?"
    return f"{socket.gethostname()}/{boot}"


def _rendezvous(group) -> object:
    ext = cpu_ext()
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    comm, name = None, None
    if rank == 0:
        name = f"/zhisuan-allreduce-{os.getpid()}-{secrets.token_hex(4)}"
        comm = ext.ShmAllReduce(name, 0, world, True, SLOT_BYTES, ONE_SHOT_MAX_BYTES, _timeout_s)
    try:
        infos: list = [None] * world
        dist.all_gather_object(infos, (host_id(), name), group=group)
        hosts = sorted({host for host, _ in infos})
        if len(hosts) > 1:
            raise RuntimeError(
                f"shm all_reduce needs every rank of the group on one host; its {world} ranks are on "
                f"{len(hosts)} hosts ({', '.join(h.split('/')[0] for h in hosts)}): use the torch backend"
            )
        if rank == 0:
            comm.wait_opened_and_unlink()
        else:
            comm = ext.ShmAllReduce(
                infos[0][1], rank, world, False, SLOT_BYTES, ONE_SHOT_MAX_BYTES, _timeout_s
            )
    except BaseException:
        if comm is not None:
            comm.close()  # on rank 0 this also removes the name
        raise
    return comm


def communicator(group=None):
    """The shared-memory communicator of `group` (default: the default group), made on first use."""
    return _communicators.get(group, _rendezvous)


def release(group=None) -> None:
    """Unmap the segment of `group` (it is made again on the next call)."""
    comm = _communicators.pop(group)
    if comm is not None:
        comm.close()


@atexit.register
def _close_all() -> None:
    for comm in _communicators.drain():
        comm.close()


@register(
    "all_reduce",
    "shm",
    devices=("cpu",),
    dtypes=DTYPES,
    probe=_probe,
    description="POSIX shared-memory all-reduce among the processes of one host (C++)",
)
def all_reduce_shm(t: torch.Tensor, *, op: str, group=None) -> None:
    """All-reduce t in place through a shared-memory segment of the group's ranks."""
    comm = communicator(group)
    ext = cpu_ext()
    # The extension's DType and ReduceOp members carry zhisuan's dtype and op names.
    kind, reduction = getattr(ext.DType, dtype_name(t.dtype)), getattr(ext.ReduceOp, op)
    ptr = t.data_ptr()
    try:
        comm.all_reduce(ptr, ptr, t.numel(), kind, reduction)
    except RuntimeError:
        # A timeout or an argument mismatch leaves the segment out of step: drop it, so the next
        # call (on every rank) sets up a fresh one.
        release(group)
        raise
