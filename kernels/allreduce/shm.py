"""shm backend of all_reduce: POSIX shared memory among the processes of one host (C++, zhisuan.kernels._C).

Purpose: all-reduce of CPU tensors between processes of one machine without the TCP loopback that
gloo goes through: the ranks meet in one shared segment and synchronise on flags in it.
When it wins: at every size on one host; small messages by the most (no sockets, no copies through
the kernel). It does not span hosts: the set-up refuses a group whose ranks are on several hosts.

The segment is set up once per process group, on the first call (a collective: every rank of the
group must make it), over the group itself: rank 0 creates a uniquely named segment and the name
reaches the others with the group's all_gather_object; rank 0 removes the name from /dev/shm as
soon as every rank has mapped it. Algorithms and barriers: csrc/cpu/shm_allreduce.h.

Names start with SEGMENT_PREFIX, or with the prefix in the environment variable SEGMENT_PREFIX_ENV:
a parent that spawns the ranks (zhisuan collective --nproc) gives its run a prefix of its own and
removes whatever carries it once its ranks are gone (remove_segments), so a rank killed after
creating a segment and before the others mapped it leaves nothing in /dev/shm either.
"""

from __future__ import annotations

import atexit
import contextlib
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
SEGMENT_PREFIX = "zhisuan-allreduce"
SEGMENT_PREFIX_ENV = "ZHISUAN_SHM_PREFIX"
SEGMENT_DIR = "/dev/shm"  # where Linux keeps POSIX shared memory names

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
        prefix = os.environ.get(SEGMENT_PREFIX_ENV, SEGMENT_PREFIX)
        name = f"/{prefix}-{os.getpid()}-{secrets.token_hex(4)}"
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


def run_prefix() -> str:
    """A segment prefix for one run of spawned ranks (pass it to them in SEGMENT_PREFIX_ENV)."""
    return f"{SEGMENT_PREFIX}-run{os.getpid()}x{secrets.token_hex(3)}"


def remove_segments(prefix: str) -> list[str]:
    """Remove the names of segments that start with prefix (once no rank will open them); returns them."""
    try:
        names = [n for n in os.listdir(SEGMENT_DIR) if n.startswith(prefix + "-")]
    except OSError:  # no /dev/shm (not Linux): names live elsewhere and the C++ side removes them
        return []
    for name in names:
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile by the rank that made it
            os.unlink(os.path.join(SEGMENT_DIR, name))
    return names


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


def prepare_shm(t: torch.Tensor, *, op: str, group=None, out: torch.Tensor | None = None):
    """One all-reduce of t (into out, or in place) as a zero-argument call; the pointers stay valid
    while the call lives (it holds the tensors)."""
    comm = communicator(group)
    dst = t if out is None else out
    ext = cpu_ext()
    # The extension's DType and ReduceOp members carry zhisuan's dtype and op names.
    kind, reduction = getattr(ext.DType, dtype_name(t.dtype)), getattr(ext.ReduceOp, op)
    args = (t.data_ptr(), dst.data_ptr(), t.numel(), kind, reduction)
    run = comm.all_reduce

    def call():
        try:
            run(*args)
        except RuntimeError:
            # A timeout or an argument mismatch leaves the segment out of step: drop it, so the next
            # call (on every rank) sets up a fresh one.
            _communicators.discard(group, comm)
            comm.close()
            raise

    call.buffers = (t, dst)
    return call


@register(
    "all_reduce",
    "shm",
    devices=("cpu",),
    dtypes=DTYPES,
    probe=_probe,
    prepare=prepare_shm,
    description="POSIX shared-memory all-reduce among the processes of one host (C++)",
)
def all_reduce_shm(t: torch.Tensor, *, op: str, group=None, out: torch.Tensor | None = None) -> None:
    """All-reduce t through a shared-memory segment of the group's ranks: in place, or into out."""
    prepare_shm(t, op=op, group=group, out=out)()
