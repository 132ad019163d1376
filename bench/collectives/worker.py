"""Entry point of a rank spawned by `zhisuan collective --nproc N` (python -m zhisuan.bench.collectives.worker).

The parent passes the plan (JSON) and the write end of its progress pipe in the environment, and
the rank's identity in torchrun's variables.
"""

from __future__ import annotations

import json
import os
import sys

from zhisuan.bench.collectives import watchdog


def main() -> int:
    # The heartbeat starts before torch is imported: on a loaded host that import alone can outlast
    # the watchdog's timeout, and a rank that is importing is not a rank that hangs.
    progress = watchdog.PipeProgress(int(os.environ[watchdog.PROGRESS_FD_ENV]))
    from zhisuan.bench.collectives import launch, rankenv, rankrun
    from zhisuan.bench.collectives.driver import SweepPlan

    plan = SweepPlan(**json.loads(os.environ[launch.PLAN_ENV]))
    code = rankrun.run_rank(plan, rankenv.discover(), progress)
    progress.finish()
    return code


if __name__ == "__main__":
    sys.exit(main())
