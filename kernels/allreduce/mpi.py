"""mpi backend of all_reduce: MPI_Allreduce through mpi4py over the system's MPI library (Open MPI, MPICH).

Purpose: the peer that OSU and MPI users know, timed beside gloo and shm on the same ranks.
When it wins: where the MPI library's transports and tuned algorithms beat ours (its shared-memory
transport within a node; across nodes, its network stack).

Needs mpi4py over an MPI library, and ranks started by mpirun / mpiexec (or srun with PMIx): MPI joins
only the processes its launcher started, so ranks spawned one by one (zhisuan's --nproc, torchrun)
are each an MPI world of one. Under mpirun zhisuan reads each rank from OMPI_COMM_WORLD_RANK /
PMI_RANK, so the torch.distributed ranks are MPI's world ranks; the communicator of a group is
made once, on its first call, and checked to agree with the group.
"""

from __future__ import annotations

import importlib.util
import os

import torch
import torch.distributed as dist

from zhisuan.kernels.allreduce.groups import PerGroup
from zhisuan.kernels.registry import register

DTYPES = (torch.float32, torch.float64, torch.int32, torch.int64)  # MPI has no standard fp16/bf16 sum
LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK")  # Open MPI, MPICH/Intel MPI, PMIx
NEEDS_MPIRUN = (
    "the mpi all_reduce needs ranks started by mpirun (MPI joins only the processes its launcher "
    "started), e.g. mpirun -np 2 -x MASTER_ADDR=127.0.0.1 python -m zhisuan.bench collective --impl mpi"
)

_communicators = PerGroup()


class _Library:
    """mpi4py's MPI module (importing it initialises MPI) and what each call needs from it, made once."""

    def __init__(self):
        from mpi4py import MPI

        self.MPI = MPI
        self.ops = {"sum": MPI.SUM, "avg": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}
        self.types = {
            torch.float32: MPI.FLOAT,
            torch.float64: MPI.DOUBLE,
            torch.int32: MPI.INT32_T,
            torch.int64: MPI.INT64_T,
        }
        # A buffer by address: ~1 us cheaper per call than t.numpy(), which an 8-byte call notices.
        self.from_address = (getattr(MPI, "buffer", None) or MPI.memory).fromaddress

    def spec(self, t: torch.Tensor) -> list:
        return [self.from_address(t.data_ptr(), t.nbytes), self.types[t.dtype]]


_library: _Library | None = None


def _mpi() -> _Library:
    global _library
    if _library is None:
        _library = _Library()
    return _library


def _probe(device_type: str) -> str | None:
    if importlib.util.find_spec("mpi4py") is None:
        return (
            "mpi4py is not installed (pip install mpi4py, over an MPI library, e.g. "
            "apt-get install openmpi-bin libopenmpi-dev)"
        )
    if not any(name in os.environ for name in LAUNCHER_VARIABLES):
        return NEEDS_MPIRUN
    if not dist.is_available() or not dist.is_initialized():
        return "no process group (call torch.distributed.init_process_group first)"
    try:
        _mpi()
    except ImportError as exc:  # mpi4py built against a library that is gone
        return f"mpi4py cannot load its MPI library: {exc}"
    return None


def _communicator_of(group) -> object:
    world = _mpi().MPI.COMM_WORLD
    if world.Get_size() != dist.get_world_size() or world.Get_rank() != dist.get_rank():
        raise RuntimeError(
            f"torch.distributed rank {dist.get_rank()} of {dist.get_world_size()} is MPI rank "
            f"{world.Get_rank()} of {world.Get_size()}: {NEEDS_MPIRUN}"
        )
    ranks = dist.get_process_group_ranks(group)
    if len(ranks) == world.Get_size():
        return world.Dup()
    return world.Create_group(world.Get_group().Incl(ranks))


def communicator(group=None):
    """The MPI communicator with the ranks of `group` (default: the default group), made on first use."""
    return _communicators.get(group, _communicator_of)


def prepare_mpi(t: torch.Tensor, *, op: str, group=None, out: torch.Tensor | None = None):
    """One MPI_Allreduce of t (into out, or in place) as a zero-argument call, as an OSU loop makes it;
    the buffers stay valid while the call lives (it holds the tensors)."""
    lib = _mpi()
    comm = communicator(group)
    send = lib.MPI.IN_PLACE if out is None else lib.spec(t)
    result = t if out is None else out
    recv, mpi_op, allreduce = lib.spec(result), lib.ops[op], comm.Allreduce
    if op != "avg":

        def call():
            allreduce(send, recv, op=mpi_op)

    else:
        n = comm.Get_size()
        divide = result.div_ if result.is_floating_point() else result.floor_divide_

        def call():
            allreduce(send, recv, op=mpi_op)
            divide(n)

    call.buffers = (t, result)
    return call


@register(
    "all_reduce",
    "mpi",
    devices=("cpu",),
    dtypes=DTYPES,
    probe=_probe,
    prepare=prepare_mpi,
    description="MPI_Allreduce through mpi4py over the system MPI (ranks started by mpirun)",
)
def all_reduce_mpi(t: torch.Tensor, *, op: str, group=None, out: torch.Tensor | None = None) -> None:
    """MPI_Allreduce of t over the group's ranks: in place, or into out (t unchanged)."""
    prepare_mpi(t, op=op, group=group, out=out)()
