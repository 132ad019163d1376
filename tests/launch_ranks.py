"""Ranks for tests/test_collectives_launch.py, run by zhisuan.bench.collectives.launch.spawn_ranks as
`python -m launch_ranks` (tests/ on PYTHONPATH) with MODE_ENV set to one of:

  sleep         heartbeats, then sleeps: a rank that is merely alive
  shm-unmapped  rank 0 creates a shared-memory segment (zhisuan.kernels.allreduce.shm) and waits for
                the others to map it; the others take its name, say whether it is in /dev/shm, and
                never map it: the hang between creating and opening a segment
"""

import os
import time

from zhisuan.bench.collectives import watchdog

MODE_ENV = "ZHISUAN_TEST_RANK_MODE"


def main(mode: str) -> None:
    progress = watchdog.PipeProgress(int(os.environ[watchdog.PROGRESS_FD_ENV]))
    if mode == "sleep":
        time.sleep(600)
        return
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


if __name__ == "__main__":
    main(os.environ[MODE_ENV])
