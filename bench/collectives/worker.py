"""Entry point of a rank spawned by `zhisuan collective --nproc N` (python -m zhisuan.bench.collectives.worker).

The parent passes the plan (JSON) and the write end of its progress pipe in the environment, and
the rank's identity in torchrun's variables.
"""

from __future__ import annotations

import json
import os
import sys

from zhisuan.bench.collectives import launch, rankenv, rankrun, watchdog
from zhisuan.bench.collectives.driver import Plan


def main() -> int:
    plan = Plan(**json.loads(os.environ[launch.PLAN_ENV]))
    progress = watchdog.PipeProgress(int(os.environ[watchdog.PROGRESS_FD_ENV]))
    env = rankenv.discover()
    return rankrun.run_rank(plan, env, progress)


if __name__ == "__main__":
    sys.exit(main())
