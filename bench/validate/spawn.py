"""`zhisuan validate --nproc N`: N local ranks, each a `python -m zhisuan.bench.validate.worker` process.

Launching and watching are the collectives benchmark's (zhisuan.bench.collectives.launch.spawn_ranks): a free
port on 127.0.0.1, torchrun's environment variables for each rank, a heartbeat pipe per rank and the
watchdog that ends the run, naming the rank, when one dies or hangs.

Ctrl-C reaches every rank (they share the terminal's process group). The parent ignores it, and the
ranks start with it ignored too until their handler is in place (zhisuan.bench.validate.session.StopFlag):
then the first Ctrl-C lets them finish the current step together and write the summary.
"""

from __future__ import annotations

import dataclasses
import json
import signal

OPTIONS_ENV = "ZHISUAN_VALIDATE_OPTIONS"


def run_local(options, nproc: int) -> int:
    """Run the validation on nproc local processes; returns the run's exit code."""
    from zhisuan.bench.collectives import launch

    # The ranks' own timeouts (process group) are longer than the watchdog's, so the watchdog, which
    # sees every rank, is the one to diagnose a hang.
    ranks_options = dataclasses.replace(options, timeout_s=launch.rank_timeout(options.timeout_s))
    env = {OPTIONS_ENV: json.dumps(dataclasses.asdict(ranks_options))}
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return launch.spawn_ranks("zhisuan.bench.validate.worker", nproc, env, options.timeout_s)
    finally:
        signal.signal(signal.SIGINT, previous)
