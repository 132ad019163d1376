"""Spawning local ranks (--nproc): a process each, on 127.0.0.1 and a free port, under the watchdog.

The ranks get torchrun's variables, so they find themselves as any torchrun rank would
(zhisuan.bench.collectives.rankenv), and the write end of a pipe to the parent's watchdog
(zhisuan.bench.collectives.watchdog).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import asdict, replace
from datetime import timedelta

from zhisuan.bench.collectives.watchdog import PROGRESS_FD_ENV, Watchdog, kill_all
from zhisuan.bench.core.errors import EXIT_CRASH, UsageError

PLAN_ENV = "ZHISUAN_COLLECTIVE_PLAN"
RANKS_PER_CPU = 4
RANK_MEMORY_BYTES = 256 << 20  # a rank's resident memory before its buffers: Python, torch, gloo


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_function(rank: int, nproc: int, port: int, backend: str, timeout_s: float, fn, args) -> None:
    import torch
    import torch.distributed as dist

    from zhisuan.bench.collectives.driver import RankContext

    torch.set_num_threads(1)
    dist.init_process_group(
        backend,
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=nproc,
        timeout=timedelta(seconds=timeout_s),
    )
    try:
        group = dist.group.WORLD
        control = group if backend == "gloo" else dist.new_group(backend="gloo")
        fn(RankContext(rank, nproc, group, control, torch.device("cpu")), *args)
    finally:
        dist.destroy_process_group()


def run_function(fn, nproc: int, *args, backend: str = "gloo", timeout_s: float = 120.0) -> None:
    """Run fn(ctx, *args) on nproc local processes joined in one process group (ctx: RankContext).

    fn must be importable by name (a module-level function). An exception on any rank is raised
    here, with that rank's traceback.
    """
    import torch.multiprocessing as mp

    mp.spawn(_run_function, args=(nproc, free_port(), backend, timeout_s, fn, args), nprocs=nproc, join=True)


def rank_timeout(watchdog_timeout_s: float) -> float:
    return 1.5 * watchdog_timeout_s + 5.0


def cpu_sets(nproc: int) -> list[set[int]] | None:
    """Disjoint sets of this process's CPUs, one per rank; None when there are fewer CPUs than ranks."""
    cpus = usable_cpus()
    if len(cpus) < nproc:
        return None
    return [set(cpus[r * len(cpus) // nproc : (r + 1) * len(cpus) // nproc]) for r in range(nproc)]


def usable_cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def _memory_available() -> int | None:
    """MemAvailable of /proc/meminfo in bytes (None where unreadable)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_nproc(nproc: int) -> None:
    """Refuse more local ranks than this host can run (UsageError naming --nproc and the bound).

    Two bounds, both real: RANKS_PER_CPU ranks per CPU this process may use (beyond that, every
    collective step waits on the scheduler and the run times the scheduler, not the collective),
    and the available memory at RANK_MEMORY_BYTES per rank (a Python process with torch).
    """
    cpus = len(usable_cpus())
    by_cpu = RANKS_PER_CPU * cpus
    memory = _memory_available()
    by_memory = memory // RANK_MEMORY_BYTES if memory is not None else None
    limit = by_cpu if by_memory is None else max(1, min(by_cpu, by_memory))
    if nproc > limit:
        reason = f"{RANKS_PER_CPU} per CPU of the {cpus} this process may use"
        if by_memory is not None and by_memory < by_cpu:
            reason = f"{memory / 2**30:.1f} GiB of memory available at {RANK_MEMORY_BYTES >> 20} MiB per rank"
        raise UsageError(
            f"--nproc {nproc}: this host runs at most {limit} local ranks ({reason}); "
            "for more, start the ranks with torchrun, srun or mpirun across hosts"
        )


class Terminated(BaseException):
    """The parent received SIGTERM or SIGHUP (timeout, Slurm, CI cancellation, a closed terminal)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum, frame):
    raise Terminated(signum)


def spawn_ranks(module: str, nproc: int, env: dict[str, str], timeout_s: float, bind: bool = False) -> int:
    """Run `python -m module` as nproc local ranks under the watchdog; returns the run's exit code.

    Each rank gets torchrun's variables (127.0.0.1 and a free port), the extra `env`, and the write
    end of its progress pipe in PROGRESS_FD_ENV (for PipeProgress). With `bind`, each rank is bound
    to its own share of the CPUs (as mpirun --bind-to does), so the scheduler cannot pile ranks that
    wait for each other onto one CPU; there is no binding when there are fewer CPUs than ranks.

    Whatever ends the run (its end, a failed rank, a rank that cannot be started, Ctrl-C, SIGTERM or
    SIGHUP to this process), no rank outlives it and no shared-memory segment of its ranks is left.
    """
    from zhisuan.kernels.allreduce import shm

    check_nproc(nproc)
    port = free_port()
    sets = cpu_sets(nproc) if bind else None
    prefix = shm.run_prefix()
    env = {**env, shm.SEGMENT_PREFIX_ENV: prefix}
    procs: list[subprocess.Popen] = []
    fds: dict[int, int] = {}
    previous = {sig: signal.signal(sig, _raise_terminated) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        for rank in range(nproc):
            try:
                _start_rank(module, rank, nproc, port, env, sets, procs, fds)
            except OSError as exc:
                print(
                    f"zhisuan collective: could not start rank {rank} of {nproc} ({exc}); "
                    f"the {len(procs)} started are stopped",
                    file=sys.stderr,
                )
                return EXIT_CRASH
        return Watchdog(procs, fds, timeout_s).wait()
    except KeyboardInterrupt:
        print("zhisuan collective: interrupted; ranks stopped", file=sys.stderr)
        return 128 + signal.SIGINT
    except Terminated as exc:
        print(
            f"zhisuan collective: {signal.Signals(exc.signum).name} received; ranks stopped", file=sys.stderr
        )
        return 128 + exc.signum
    finally:
        kill_all(procs)
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        shm.remove_segments(prefix)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start_rank(module, rank, nproc, port, env, sets, procs: list, fds: dict) -> None:
    """Start one rank: it joins procs, its pipe's read end fds (the caller stops and closes them)."""
    read_fd, write_fd = os.pipe()
    fds[read_fd] = rank
    try:
        rank_env = dict(os.environ)
        rank_env.update(
            RANK=str(rank),
            WORLD_SIZE=str(nproc),
            LOCAL_RANK=str(rank),
            LOCAL_WORLD_SIZE=str(nproc),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
        rank_env.update(env)
        rank_env[PROGRESS_FD_ENV] = str(write_fd)
        rank_env.setdefault(
            "OMP_NUM_THREADS", str(len(sets[rank]) if sets else max(1, (os.cpu_count() or 1) // nproc))
        )
        procs.append(subprocess.Popen([sys.executable, "-m", module], env=rank_env, pass_fds=(write_fd,)))
        if sets:
            os.sched_setaffinity(procs[-1].pid, sets[rank])
    finally:
        os.close(write_fd)


def spawn(nproc: int, plan, timeout_s: float) -> int:
    """Run the plan on nproc local processes; returns the run's exit code."""
    # The ranks' own timeouts (process group, shm barriers) are longer than the watchdog's, so the
    # watchdog, which sees every rank, is the one to diagnose a hang.
    plan_json = json.dumps(asdict(replace(plan, timeout_s=rank_timeout(timeout_s))))
    return spawn_ranks("zhisuan.bench.collectives.worker", nproc, {PLAN_ENV: plan_json}, timeout_s, plan.bind)
