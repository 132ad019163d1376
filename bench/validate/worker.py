"""Entry point of a rank spawned by `zhisuan validate --nproc N` (python -m zhisuan.bench.validate.worker).

The parent passes the options (JSON) and the write end of the watchdog's pipe in the environment,
and the rank's identity in torchrun's variables. A rank that fails prints one line and exits 3
(zhisuan.bench.validate.session.run_rank), which the watchdog reports with the rank's name (exit
codes 0-2 are a finished run's verdicts).
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    from zhisuan.bench.collectives import watchdog

    # The heartbeat starts before torch is imported (zhisuan.bench.collectives.worker says why).
    progress = watchdog.PipeProgress(int(os.environ[watchdog.PROGRESS_FD_ENV]))
    from zhisuan.bench.collectives import rankenv
    from zhisuan.bench.validate.session import Options, run_rank
    from zhisuan.bench.validate.spawn import OPTIONS_ENV

    options = Options(**json.loads(os.environ[OPTIONS_ENV]))
    code = run_rank(options, rankenv.discover(), progress)
    progress.finish()
    return code


if __name__ == "__main__":
    sys.exit(main())
