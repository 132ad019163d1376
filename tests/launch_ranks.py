"""What the tests of spawned ranks share: finding a parent's ranks among the processes (rank_pids),
waiting for a run to reach the burn-in of `zhisuan validate` (wait_for_burn_in), and ranks of their own for tests/test_collectives_launch.py, run by
zhisuan.bench.collectives.launch.spawn_ranks as `python -m launch_ranks` (tests/ on PYTHONPATH) with
MODE_ENV set to one of:

  sleep         heartbeats, then sleeps: a rank that is merely alive
  shm-unmapped  rank 0 creates a shared-memory segment (zhisuan.kernels.allreduce.shm) and waits for
                the others to map it; the others take its name, say whether it is in /dev/shm, and
                never map it: the hang between creating and opening a segment
  usage-error   the real rank (zhisuan.bench.collectives.rankrun.run_rank) whose plan raises a user's
                error (UsageError) on rank 0 only, while rank 1 waits for rank 0 in a barrier
"""

import os
import sys
import time

from zhisuan.bench.collectives import watchdog

MODE_ENV = "ZHISUAN_TEST_RANK_MODE"


def rank_pids(parent: int) -> dict[int, int]:
    """{rank: pid} of the ranks a parent process spawned (they carry torchrun's RANK variable)."""
    pids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read().split(b"\0")
        except OSError:
            continue
        ranks = [var[len(b"RANK=") :] for var in environ if var.startswith(b"RANK=")]
        if ppid == parent and ranks:
            pids[int(ranks[0])] = int(entry)
    return pids


BEFORE_BURN_IN = '"op": "integrity"'  # validate writes its integrity records just before the burn-in


def wait_for_burn_in(path, procs, seconds: float = 240) -> None:
    """Return once validate's results file at path shows the burn-in has begun; fail the test (with
    the stderr of what ended) if a process of procs (Popen) ends first or `seconds` pass."""
    import pytest

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and all(p.poll() is None for p in procs):
        if path.exists() and BEFORE_BURN_IN in path.read_text():
            return
        time.sleep(0.2)
    ended = [p.communicate()[1][-3000:] for p in procs if p.poll() is not None]
    pytest.fail(f"the run did not reach the burn-in within {seconds:g} s: {ended}")


def main(mode: str) -> None:
    progress = watchdog.PipeProgress(int(os.environ[watchdog.PROGRESS_FD_ENV]))
    if mode == "sleep":
        time.sleep(600)
        return
    if mode == "usage-error":
        sys.exit(_rank_with_a_usage_error(progress))
    import torch.distributed as dist

    from zhisuan.kernels.allreduce import shm

    dist.init_process_group("gloo")  # torchrun's variables, from spawn_ranks
    rank, world = dist.get_rank(), dist.get_world_size()
    progress.enter()  # the watchdog sees every rank inside one call that never ends
    if rank == 0:
        shm.communicator()
    else:
        infos = [None] * world
        dist.all_gather_object(infos, (shm.host_id(), None))  # rank 0's half of its rendezvous
        name = infos[0][1]
        print(
            f"rank {rank}: segment {name} in {shm.SEGMENT_DIR}: {os.path.exists(shm.SEGMENT_DIR + name)}",
            flush=True,
        )
        time.sleep(600)


def _rank_with_a_usage_error(progress) -> int:
    import torch.distributed as dist

    from zhisuan.bench.collectives import driver, rankenv, rankrun
    from zhisuan.bench.core.errors import UsageError

    def refuse_on_rank_0(plan, ctx, progress):
        if ctx.rank == 0:
            raise UsageError("rank 0 cannot use its input")
        dist.barrier(group=ctx.control)  # rank 0 never comes: this rank fails, or is ended
        return 0

    driver.run = refuse_on_rank_0
    plan = driver.SweepPlan(collectives=["all_reduce"], dtypes=["fp32"], ops=["sum"], sizes=[8], timeout_s=60)
    return rankrun.run_rank(plan, rankenv.discover(), progress)


if __name__ == "__main__":
    main(os.environ[MODE_ENV])
