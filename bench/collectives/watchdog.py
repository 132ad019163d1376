"""The watchdog of spawned ranks (--nproc): what a rank tells about itself, and what the parent makes of it.

Every spawned rank writes to a pipe of the parent a line per step it starts and, from a thread, a
heartbeat each second that says whether (and for how long) the rank is inside a collective call.
The parent ends the run, kills what is left and names the rank, when
  - a rank exits abnormally (killed by a signal, or an error exit): that rank, signals first;
  - a rank exits with a user's error (EXIT_USAGE; it printed the one line): the run ends with it;
  - a rank's heartbeat stops for the timeout (stopped, or stuck while holding the interpreter);
  - a rank has been inside one collective call for the timeout: the rank that went silent or that
    is not in the call is the one holding the others up; if every rank is in it, the call hangs.
A slow run is not a hung one: only a single call that outlasts the timeout counts.
Under an external launcher, the process group's own timeout (set to --timeout) turns a hang into an
error; each rank publishes its step in the group's store (StoreProgress), so the error names the
ranks behind.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta

from zhisuan.bench.core.errors import EXIT_CRASH, EXIT_USAGE

PROGRESS_FD_ENV = "ZHISUAN_COLLECTIVE_PROGRESS_FD"
HEARTBEAT_S = 1.0
GRACE_S = 3.0  # after one rank fails, how long the others get to exit on their own


# ---- the rank's side ------------------------------------------------------------------------------


class Progress:
    """What a rank tells about itself: the step it starts, and when it is inside a collective call.

    This base class tells no one (a single rank, or a caller that needs no watchdog).
    """

    def step(self, label: str) -> None:
        pass

    def enter(self) -> None:
        pass

    def leave(self) -> None:
        pass

    def peers_behind(self) -> str:
        return ""

    def finish(self) -> None:
        """The rank is done and about to exit (its exit may take a while on a loaded host)."""


class PipeProgress(Progress):
    """A spawned rank's channel to the parent's watchdog.

    Lines: `step LABEL` when a step starts; `beat` every HEARTBEAT_S from a thread, or `beat S` while
    the rank has been inside one collective call for S seconds; `done` when the rank has finished.
    When the pipe breaks, the parent is gone (killed): the rank ends itself with SIGTERM (a clean
    exit where a handler is in place), and exits outright GRACE_S later if it is still there.
    """

    def __init__(self, fd: int):
        self.fd = fd
        self.lock = threading.Lock()
        self.since: float | None = None  # when the current collective call began
        self.orphaned_at: float | None = None  # when the pipe to the parent broke
        self._send("beat")
        threading.Thread(target=self._beat, name="zhisuan-heartbeat", daemon=True).start()

    def _send(self, line: str) -> None:
        try:
            with self.lock:
                os.write(self.fd, (line.replace("\n", " ")[:400] + "\n").encode())
        except OSError:
            if self.orphaned_at is None:
                self.orphaned_at = time.monotonic()
                os.kill(os.getpid(), signal.SIGTERM)

    def _beat(self) -> None:
        while True:
            time.sleep(HEARTBEAT_S)
            if self.orphaned_at is not None and time.monotonic() - self.orphaned_at > GRACE_S:
                os._exit(EXIT_CRASH)
            since = self.since
            self._send("beat" if since is None else f"beat {time.monotonic() - since:.3f}")

    def step(self, label: str) -> None:
        self._send(f"step {label}")

    def enter(self) -> None:
        self.since = time.monotonic()

    def leave(self) -> None:
        self.since = None

    def finish(self) -> None:
        self._send("done")


class StoreProgress(Progress):
    """Under an external launcher (torchrun, srun, mpirun): what each rank tells, kept in the process
    group's store, so that a rank whose collective call fails can say which ranks, on which hosts,
    are gone and which are behind.

    Each rank writes its host and, per step, its step count and label; a thread adds one to the
    rank's heartbeat counter every `beat_s` over its own connection to the store. On failure,
    `peers_behind` reads every counter twice, GONE_AFTER_BEATS beats apart: a counter that did not
    move belongs to a rank that is gone (killed, stopped, its host down) unless the rank said it
    left (`finish`). Counters, not clocks: the hosts' clocks need not agree. Keys carry the run id,
    so runs sharing a store (torchrun's agent store across restarts) do not mix.
    """

    GONE_AFTER_BEATS = 3
    BEATS_PER_S = 1000  # the store takes at most about this many heartbeats per second, all ranks together

    def __init__(self, rank: int, world: int, run_id: str, host: str | None = None, store=None,
                 heartbeat_s: float = HEARTBEAT_S):  # fmt: skip
        import torch.distributed as dist

        self.rank, self.world, self.steps = rank, world, 0
        self.prefix = f"zhisuan/{run_id}/"
        self.store = store or dist.distributed_c10d._get_default_store()
        self.beat_s = max(heartbeat_s, world / self.BEATS_PER_S)
        self.store.set(self._key("host", rank), host or socket.gethostname())
        self.store.add(self._key("beat", rank), 1)
        self.stopped = threading.Event()
        self.beater = threading.Thread(target=self._beat, args=(self.store.clone(),), name="zhisuan-heartbeat",
                                       daemon=True)  # fmt: skip
        self.beater.start()

    def _key(self, kind: str, rank: int) -> str:
        return f"{self.prefix}{kind}/{rank}"

    def _beat(self, store) -> None:
        while not self.stopped.wait(self.beat_s):
            try:
                store.add(self._key("beat", self.rank), 1)
            except Exception:  # the store is gone (the process holding it died): nothing left to tell
                return

    def step(self, label: str) -> None:
        self.steps += 1
        self.store.set(self._key("step", self.rank), f"{self.steps} {label}")

    def finish(self) -> None:
        """This rank leaves (done, or failed and said why): its silent heartbeat then means nothing."""
        self.stopped.set()
        with contextlib.suppress(Exception):
            self.store.set(self._key("left", self.rank), "1")

    def _read(self, kind: str, default: str) -> list[str]:
        keys = [self._key(kind, r) for r in range(self.world)]
        if self.store.check(keys):
            return [v.decode() for v in self.store.multi_get(keys)]
        return [self.store.get(k).decode() if self.store.check([k]) else default for k in keys]

    def peers_behind(self) -> str:
        """'; ranks 2, 3 on node-b are gone (no heartbeat for 3 s); rank 1 on node-a is behind (step 4
        ...)', as far as the store is readable (it lives with rank 0 or the launcher's agent)."""
        try:
            self.store.set_timeout(timedelta(seconds=5))
            before = self._read("beat", "0")
            time.sleep(self.GONE_AFTER_BEATS * self.beat_s)
            after, left = self._read("beat", "0"), self._read("left", "")
            hosts, steps = self._read("host", "?"), self._read("step", "0 not started")
        except Exception as exc:
            return f"; the ranks' progress is unreadable ({exc}): the process holding the store may be down"
        gone = [r for r in range(self.world) if after[r] == before[r] and not left[r] and r != self.rank]
        counts = {r: int(steps[r].split(" ", 1)[0]) for r in range(self.world)}
        # With ranks gone, the ranks left were waiting for them: which of those is a step behind says nothing.
        behind = [] if gone else [r for r, c in counts.items() if c < max(counts.values())]
        silent = f"no heartbeat for {self.GONE_AFTER_BEATS * self.beat_s:.0f} s"
        return "".join(
            [f"; {where} gone ({silent})" for where in ranks_by_host(gone, hosts)]
            + [f"; rank {r} on {hosts[r]} is behind (step {steps[r]})" for r in behind]
        )


def ranks_by_host(ranks: list[int], hosts: list[str]) -> list[str]:
    """The given ranks grouped by host, as the subject of a sentence: 'rank 5 on node-c is', 'ranks 2,
    3 on node-b are', and 'all 2 ranks of node-b (2, 3) are' when they are every rank of that host."""
    by_host: dict[str, list[int]] = {}
    for r in ranks:
        by_host.setdefault(hosts[r], []).append(r)
    out = []
    for host, rs in by_host.items():
        listed = ", ".join(map(str, rs))
        if len(rs) > 1 and len(rs) == hosts.count(host):
            out.append(f"all {len(rs)} ranks of {host} ({listed}) are")
        else:
            out.append(
                f"rank{'s' if len(rs) > 1 else ''} {listed} on {host} {'are' if len(rs) > 1 else 'is'}"
            )
    return out


# ---- the parent's side ------------------------------------------------------------------------------


class Watchdog:
    """Follows spawned ranks through their pipes and exit codes (rules in the module docstring)."""

    def __init__(self, procs: list[subprocess.Popen], fds: dict[int, int], timeout_s: float):
        self.procs, self.fds, self.timeout_s = procs, fds, timeout_s
        now = time.monotonic()
        n = len(procs)
        self.beat = [now] * n  # when each rank was last heard from
        self.in_call: list[float | None] = [None] * n  # seconds inside a collective call, at that beat
        self.steps = [0] * n
        self.label = ["starting"] * n
        self.done: list[float | None] = [None] * n  # when each rank said it had finished
        self.buffers = {fd: b"" for fd in fds}
        self.selector = selectors.DefaultSelector()
        for fd in fds:
            self.selector.register(fd, selectors.EVENT_READ)

    def _read(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            fd = key.fd
            data = os.read(fd, 65536)
            if not data:  # the rank closed its end (it exited); the spawner closes ours
                self.selector.unregister(fd)
                continue
            rank = self.fds[fd]
            *lines, self.buffers[fd] = (self.buffers[fd] + data).split(b"\n")
            self.beat[rank] = time.monotonic()
            for line in lines:
                kind, _, rest = line.decode(errors="replace").partition(" ")
                if kind == "step":
                    self.steps[rank] += 1
                    self.label[rank] = rest
                    self.in_call[rank] = None
                elif kind == "beat":
                    self.in_call[rank] = float(rest) if rest else None
                elif kind == "done":
                    self.done[rank] = time.monotonic()
                    self.in_call[rank] = None

    def _where(self, rank: int) -> str:
        return f"in {self.label[rank]}" if self.steps[rank] else "while starting"

    def _silent_for(self, rank: int, now: float) -> float:
        return now - self.beat[rank]

    def _waiting_for(self, rank: int, now: float) -> float:
        """How long the rank has been inside its current collective call (0 when it is not)."""
        return 0.0 if self.in_call[rank] is None else self.in_call[rank] + now - self.beat[rank]

    def wait(self) -> int:
        try:
            while True:
                self._read(0.2)
                codes = [p.poll() for p in self.procs]
                if EXIT_USAGE in codes and not all(c == EXIT_USAGE for c in codes):
                    return self._usage_error()
                if any(c is not None and c not in (0, 1, 2) for c in codes):
                    return self._fail_after_exit()
                if all(c is not None for c in codes):
                    return max(codes)
                now = time.monotonic()
                lingering = [r for r, c in enumerate(codes) if c is None and self.done[r] is not None]
                if any(now - self.done[r] > self.timeout_s for r in lingering):
                    return self._fail(
                        [f"rank {r} finished but did not exit within {self.timeout_s:g} s" for r in lingering]
                    )
                # A rank that finished is silent while it exits: only the others are watched.
                running = [r for r, c in enumerate(codes) if c is None and self.done[r] is None]
                silent = [r for r in running if self._silent_for(r, now) > self.timeout_s]
                if silent:
                    return self._fail([self._stopped(r, now) for r in silent])
                if any(self._waiting_for(r, now) > self.timeout_s for r in running):
                    return self._fail(self._hung_call(running, now))
        finally:
            self.selector.close()

    def _stopped(self, rank: int, now: float) -> str:
        return (
            f"rank {rank} stopped responding {self._where(rank)}: no heartbeat for "
            f"{self._silent_for(rank, now):.0f} s (stopped, or stuck holding the interpreter)"
        )

    def _hung_call(self, running: list[int], now: float) -> list[str]:
        waiting = [r for r in running if self._waiting_for(r, now) > self.timeout_s]
        # The cause: a rank that went silent, else the ranks that are not in the call at all.
        silent = [r for r in running if self._silent_for(r, now) > 2 * HEARTBEAT_S + 1]
        if silent:
            return [self._stopped(r, now) for r in silent]
        absent = [r for r in running if self.in_call[r] is None]
        ranks = ", ".join(map(str, waiting))
        if absent:
            return [
                f"rank {r} hangs outside the collective {self._where(r)}, while rank(s) {ranks} waited "
                f"{self.timeout_s:g} s for it {self._where(waiting[0])}"
                for r in absent
            ]
        return [
            f"rank(s) {ranks} all waited {self.timeout_s:g} s in one collective call {self._where(waiting[0])}"
        ]

    def _fail_after_exit(self) -> int:
        # Give the others a moment: they usually fail right after (a peer's socket closed). Ranks
        # killed by a signal or silent are named first: they are the cause, the errors follow.
        deadline = time.monotonic() + GRACE_S
        while time.monotonic() < deadline and any(p.poll() is None for p in self.procs):
            self._read(0.1)
        now = time.monotonic()
        codes = [p.poll() for p in self.procs]
        if EXIT_USAGE in codes:  # the cause: a rank's user error; the others failed waiting for it
            return self._usage_error()
        killed = [r for r, c in enumerate(codes) if c is not None and c < 0]
        silent = [r for r, c in enumerate(codes) if c is None and now - self.beat[r] > 2 * HEARTBEAT_S + 1]
        failed = [r for r, c in enumerate(codes) if c is not None and c > 0]
        lines = [
            f"rank {r} died {self._where(r)}: killed by {signal.Signals(-codes[r]).name}" for r in killed
        ]
        lines += [
            f"rank {r} stopped responding {self._where(r)}: no heartbeat for {now - self.beat[r]:.0f} s"
            for r in silent
        ]
        cause = bool(lines)
        lines += [
            f"{'then ' if cause else ''}rank {r} failed {self._where(r)} (exit code {codes[r]})"
            for r in failed
        ]
        return self._fail(lines)

    def _usage_error(self) -> int:
        """A rank left with a user's error (it printed it): the others, which can only fail or wait
        for it now, are ended, and the run ends as that error, not as a crash."""
        kill_all(self.procs)
        return EXIT_USAGE

    def _fail(self, lines: list[str]) -> int:
        kill_all(self.procs)
        for line in lines:
            print(f"zhisuan collective: {line}", file=sys.stderr)
        return EXIT_CRASH


def kill_all(procs: list[subprocess.Popen]) -> None:
    """End every process that still runs, and reap them all."""
    for p in procs:
        if p.poll() is None:
            p.kill()  # SIGKILL also ends a stopped process
    for p in procs:
        p.wait()
