"""`zhisuan validate --nproc N`: N local ranks, each a `python -m bench.validate.worker` process.

Launching and watching reuse the collectives benchmark's machinery (bench.collectives.launch): a
free port on 127.0.0.1, torchrun's environment variables for each rank, a heartbeat pipe per rank
and the watchdog that ends the run, naming the rank, when one dies or hangs.

Ctrl-C reaches every rank (they share the terminal's process group); the parent ignores it while
it waits, so the ranks can finish their current step together and write the summary.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys

OPTIONS_ENV = "ZHISUAN_VALIDATE_OPTIONS"


def run_local(options, nproc: int) -> int:
    """Run the validation on nproc local processes; returns the run's exit code."""
    from bench.collectives import launch

    port = launch.free_port()
    # The ranks' own timeouts (process group) are longer than the watchdog's, so the watchdog, which
    # sees every rank, is the one to diagnose a hang.
    ranks_options = dataclasses.replace(options, timeout_s=launch.rank_timeout(options.timeout_s))
    options_text = json.dumps(dataclasses.asdict(ranks_options))
    threads = max(1, (os.cpu_count() or 1) // nproc)
    procs, fds = [], {}
    for rank in range(nproc):
        read_fd, write_fd = os.pipe()
        env = dict(os.environ)
        env.update(
            RANK=str(rank),
            WORLD_SIZE=str(nproc),
            LOCAL_RANK=str(rank),
            LOCAL_WORLD_SIZE=str(nproc),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
        env[OPTIONS_ENV] = options_text
        env[launch.PROGRESS_FD_ENV] = str(write_fd)
        env.setdefault("OMP_NUM_THREADS", str(threads))
        procs.append(
            subprocess.Popen([sys.executable, "-m", "bench.validate.worker"], env=env, pass_fds=(write_fd,))
        )
        os.close(write_fd)
        fds[read_fd] = rank
    # Only now: a child started after this would inherit the ignored SIGINT.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return launch.Watchdog(procs, fds, options.timeout_s).wait()
    finally:
        signal.signal(signal.SIGINT, previous)
