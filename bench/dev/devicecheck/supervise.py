"""Run one stage as a subprocess under a deadline, its output streamed to the logs line by line.

The child gets a process group of its own, so at the deadline the whole group (xdist workers, the
ranks of an IPC test, pip's compilers) is stopped: SIGTERM, then SIGKILL after a grace period. Its
output goes to the stage's own log and to the combined log as it arrives, so a stage stopped at
its cap, or a call cut short, keeps every line it printed.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

GRACE_S = 5.0  # between SIGTERM and SIGKILL
TAIL_LINES = 30  # kept in memory for the stage's record


@dataclass
class Outcome:
    returncode: int | None  # None: stopped at the deadline
    seconds: float
    timed_out: bool
    tail: list[str] = field(default_factory=list)


class Deadlines:
    """Each stage may run for its cap plus whatever the stages before it left unused."""

    def __init__(self) -> None:
        self.banked_s = 0.0

    def allowed(self, cap_s: float) -> float:
        return cap_s + self.banked_s

    def spend(self, allowed_s: float, used_s: float) -> None:
        self.banked_s = max(0.0, allowed_s - used_s)


def _stop_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(pgid, sig)


def _pump(source: BinaryIO, sinks: list[BinaryIO], tail: collections.deque) -> None:
    for line in iter(source.readline, b""):
        for sink in sinks:
            sink.write(line)
            sink.flush()
        tail.append(line.decode("utf-8", "replace").rstrip("\n"))


def run(
    argv: list[str], *, timeout_s: float, stage_log: Path, combined_log: BinaryIO, env: dict, cwd: Path
) -> Outcome:
    """Run argv until it exits or timeout_s passes; the group is always cleaned up afterwards."""
    stage_log.parent.mkdir(parents=True, exist_ok=True)
    tail: collections.deque = collections.deque(maxlen=TAIL_LINES)
    start = time.monotonic()
    with open(stage_log, "ab") as own_log:
        try:
            proc = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env=env,
                start_new_session=True,  # its own process group: stopped as one
            )
        except OSError as exc:
            message = f"cannot start {argv[0]}: {exc}"
            for sink in (own_log, combined_log):
                sink.write((message + "\n").encode())
                sink.flush()
            return Outcome(returncode=127, seconds=time.monotonic() - start, timed_out=False, tail=[message])
        pump = threading.Thread(target=_pump, args=(proc.stdout, [own_log, combined_log], tail), daemon=True)
        pump.start()
        timed_out = False
        try:
            proc.wait(timeout=max(0.0, timeout_s))
        except subprocess.TimeoutExpired:
            timed_out = True
            _stop_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                _stop_group(proc.pid, signal.SIGKILL)
                proc.wait()
        # Whatever the child left behind in its group (a worker, a rank) must not hold the GPU
        # while the next stage runs.
        _stop_group(proc.pid, signal.SIGKILL)
        pump.join(timeout=GRACE_S)
        if not pump.is_alive():  # else a process outside the group still holds the pipe: leave it
            proc.stdout.close()
    seconds = time.monotonic() - start
    return Outcome(
        returncode=None if timed_out else proc.returncode,
        seconds=seconds,
        timed_out=timed_out,
        tail=list(tail),
    )
