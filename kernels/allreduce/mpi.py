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


def _mpi():
    """mpi4py's MPI module (importing it initialises MPI)."""
    from mpi4py import MPI

    return MPI


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
    MPI = _mpi()
    world = MPI.COMM_WORLD
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


@register(
    "all_reduce",
    "mpi",
    devices=("cpu",),
    dtypes=DTYPES,
    probe=_probe,
    description="MPI_Allreduce through mpi4py over the system MPI (ranks started by mpirun)",
)
def all_reduce_mpi(t: torch.Tensor, *, op: str, group=None, out: torch.Tensor | None = None) -> None:
    """MPI_Allreduce of t over the group's ranks: in place, or into out (t unchanged)."""
    MPI = _mpi()
    comm = communicator(group)
    mpi_op = {"sum": MPI.SUM, "avg": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
    if out is None:
        comm.Allreduce(MPI.IN_PLACE, t.numpy(), op=mpi_op)
        result = t
    else:
        comm.Allreduce(t.numpy(), out.numpy(), op=mpi_op)
        result = out
    if op == "avg":
        if result.is_floating_point():
            result.div_(comm.Get_size())
        else:
            result.floor_divide_(comm.Get_size())
