"""A rank's life: join the process group, run the plan, leave together; errors become one line."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from datetime import timedelta

from zhisuan.bench.collectives.rankenv import RankEnv
from zhisuan.bench.collectives.watchdog import Progress, StoreProgress


class RankTerminated(SystemExit):
    """SIGTERM or SIGHUP reached this rank (its launcher, Slurm, a timeout): exit 128 + signal."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum


@contextlib.contextmanager
def exit_on_termination():
    """Inside: SIGTERM and SIGHUP end this rank as an error would (RankTerminated, a SystemExit), so
    finally blocks and atexit run and a shared-memory segment this rank made is removed."""

    def leave(signum, frame):
        raise RankTerminated(signum)

    previous = {sig: signal.signal(sig, leave) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def init_ranks(env: RankEnv, plan):
    """Join the process group; returns the driver's RankContext."""
    import torch
    import torch.distributed as dist

    from zhisuan.bench.collectives.driver import RankContext
    from zhisuan.bench.core import accel

    timeout = timedelta(seconds=plan.timeout_s)
    device = torch.device(accel.check(plan.device))  # imports the type's plug-in (torch_npu, ...) if need be
    if accel.is_accelerator(device.type):
        device = torch.device(device.type, env.local_rank % accel.device_count(device.type))
        accel.set_device(device)
    if env.launcher == "single":
        dist.init_process_group(plan.backend, store=dist.HashStore(), rank=0, world_size=1, timeout=timeout)
    else:
        os.environ["MASTER_ADDR"] = env.master_addr or "127.0.0.1"
        if env.master_port is not None:
            os.environ["MASTER_PORT"] = str(env.master_port)
        dist.init_process_group(
            plan.backend, init_method="env://", rank=env.rank, world_size=env.world, timeout=timeout
        )
    group = dist.group.WORLD
    control = group if plan.backend == "gloo" else dist.new_group(backend="gloo", timeout=timeout)
    if "shm" in plan.impls:
        from zhisuan.kernels.allreduce import shm

        shm.set_timeout(plan.timeout_s)
    return RankContext(env.rank, env.world, group, control, device)


def run_rank(plan, env: RankEnv, progress=None) -> int:
    """Run the plan as this rank; errors become one line on stderr and exit code 3, a user's error
    (UsageError) exit code 2, which the watchdog (or the caller) passes on as the run's."""
    with exit_on_termination():
        return _run_rank(plan, env, progress)


def _run_rank(plan, env: RankEnv, progress) -> int:
    import torch.distributed as dist

    from zhisuan.bench.cli import safe_line
    from zhisuan.bench.collectives import driver
    from zhisuan.bench.core import threads
    from zhisuan.bench.core.errors import EXIT_CRASH, EXIT_USAGE, UsageError

    threads.apply(threads.per_rank(env.local_world))  # the host's cores shared among its ranks
    own = None  # the progress channel this function made (and ends), not the caller's
    try:
        driver.validate_world(plan, env.world)
    except UsageError as exc:
        if env.rank == 0:
            print(f"zhisuan: error: {safe_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        ctx = init_ranks(env, plan)
        # Under an external launcher every rank parsed its own command line: rank 0's plan (its
        # random seed above all: the check data must agree) is the one that runs.
        shared = [plan]
        dist.broadcast_object_list(shared, src=dist.get_global_rank(ctx.control, 0), group=ctx.control)
        plan = shared[0]
        if progress is None:
            progress = own = StoreProgress(env.rank, env.world, plan.run_id) if env.world > 1 else Progress()
        code = driver.run(plan, ctx, progress)
        # Leave together: no rank tears its sockets down while a peer may still be reading from it.
        dist.barrier(group=ctx.control)
        return code
    except UsageError as exc:  # the user's, on this rank (rank 0's results file, above all): one line
        print(f"zhisuan: error: {safe_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        hint = progress.peers_behind() if progress is not None else ""
        print(f"zhisuan collective: {rank_name(env)}: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
        return EXIT_CRASH
    finally:
        if own is not None:
            own.finish()
        if dist.is_initialized():
            dist.destroy_process_group()


def rank_name(env: RankEnv) -> str:
    """'rank 3' of a run on one host; 'rank 3 on node-b' where the ranks span hosts."""
    return (
        f"rank {env.rank}" if env.local_world == env.world else f"rank {env.rank} on {socket.gethostname()}"
    )
