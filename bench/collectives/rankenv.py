"""Which rank this process is, read from the environment its launcher set.

torchrun       RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (one node or many)
Slurm srun     SLURM_PROCID, SLURM_STEP_NUM_TASKS (or SLURM_NTASKS), SLURM_LOCALID; the master is
               MASTER_ADDR if set, else the first host of SLURM_STEP_NODELIST / SLURM_JOB_NODELIST,
               and MASTER_PORT if set, else a port derived from the job id (the same on every rank)
mpirun         OMPI_COMM_WORLD_RANK/_SIZE/_LOCAL_RANK (Open MPI) or PMI_RANK, PMI_SIZE,
               MPI_LOCALRANKID (MPICH, Intel MPI); MASTER_ADDR must be exported to every rank
--nproc N      zhisuan.bench.collectives.launch spawns N local processes with torchrun's variables
               and a watchdog pipe (launcher "spawn")
none of these  a single rank
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from zhisuan.bench.collectives.watchdog import PROGRESS_FD_ENV
from zhisuan.bench.core.errors import UsageError


@dataclass(frozen=True)
class RankEnv:
    rank: int
    world: int
    local_rank: int
    local_world: int
    master_addr: str | None
    master_port: int | None
    launcher: str  # torchrun | slurm | mpi | spawn | single


SINGLE = RankEnv(0, 1, 0, 1, None, None, "single")


def _int(environ, name: str) -> int:
    try:
        return int(environ[name])
    except ValueError:
        raise UsageError(f"environment variable {name}={environ[name]!r} is not an integer") from None


def first_slurm_host(nodelist: str) -> str:
    """'gpu[01-04,07],cpu5' -> 'gpu01' (the first host of a Slurm node list)."""
    match = re.match(r"^([^,\[]+)(?:\[([^\]]+)\])?([^,]*)", nodelist.strip())
    if not match:
        raise UsageError(f"cannot read the Slurm node list {nodelist!r}; set MASTER_ADDR")
    prefix, ranges, suffix = match.groups()
    if ranges is None:
        return prefix + suffix
    first = ranges.split(",")[0].split("-")[0]
    return prefix + first + suffix


def discover(environ=None) -> RankEnv | None:
    """The rank this process is, from its launcher's environment; None when no launcher started it."""
    env = os.environ if environ is None else environ
    addr = env.get("MASTER_ADDR")
    port = _int(env, "MASTER_PORT") if "MASTER_PORT" in env else None
    if "RANK" in env and "WORLD_SIZE" in env:
        world = _int(env, "WORLD_SIZE")
        local_world = _int(env, "LOCAL_WORLD_SIZE") if "LOCAL_WORLD_SIZE" in env else world
        launcher = "spawn" if PROGRESS_FD_ENV in env else "torchrun"
        local = _int(env, "LOCAL_RANK") if "LOCAL_RANK" in env else 0
        return RankEnv(_int(env, "RANK"), world, local, local_world, addr, port, launcher)
    if "SLURM_PROCID" in env and ("SLURM_STEP_NUM_TASKS" in env or "SLURM_NTASKS" in env):
        world = _int(env, "SLURM_STEP_NUM_TASKS" if "SLURM_STEP_NUM_TASKS" in env else "SLURM_NTASKS")
        if world > 1:
            nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or ""
            if addr is None and not nodelist:
                raise UsageError("Slurm: neither MASTER_ADDR nor SLURM_STEP_NODELIST is set")
            addr = addr or first_slurm_host(nodelist)
            if port is None:  # the same on every rank of the job, and unlikely to collide
                port = 20000 + _int(env, "SLURM_JOB_ID") % 20000 if "SLURM_JOB_ID" in env else 29500
            local = _int(env, "SLURM_LOCALID") if "SLURM_LOCALID" in env else 0
            tasks = env.get("SLURM_STEP_TASKS_PER_NODE", env.get("SLURM_NTASKS_PER_NODE", "1"))
            local_world = int(re.match(r"\d+", tasks).group()) if re.match(r"\d+", tasks) else 1
            return RankEnv(_int(env, "SLURM_PROCID"), world, local, local_world, addr, port, "slurm")
    for rank_var, size_var, local_var, local_size_var in (
        (
            "OMPI_COMM_WORLD_RANK",
            "OMPI_COMM_WORLD_SIZE",
            "OMPI_COMM_WORLD_LOCAL_RANK",
            "OMPI_COMM_WORLD_LOCAL_SIZE",
        ),
        ("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"),
    ):
        if rank_var in env and size_var in env and _int(env, size_var) > 1:
            if addr is None:
                raise UsageError(
                    "mpirun: set MASTER_ADDR (rank 0's host) for every rank, e.g. mpirun -x MASTER_ADDR=host0"
                )
            local = _int(env, local_var) if local_var in env else 0
            local_world = _int(env, local_size_var) if local_size_var in env else 1
            return RankEnv(
                _int(env, rank_var), _int(env, size_var), local, local_world, addr, port or 29500, "mpi"
            )
    return None
