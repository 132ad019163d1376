"""Where the ranks come from, how they meet, and the watchdog that ends a run whose rank died or hung.

Launchers (read from the environment each one sets):
  torchrun       RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (one node or many)
  Slurm srun     SLURM_PROCID, SLURM_STEP_NUM_TASKS (or SLURM_NTASKS), SLURM_LOCALID; the master is
                 MASTER_ADDR if set, else the first host of SLURM_STEP_NODELIST / SLURM_JOB_NODELIST,
                 and MASTER_PORT if set, else a port derived from the job id (the same on every rank)
  mpirun         OMPI_COMM_WORLD_RANK/_SIZE/_LOCAL_RANK (Open MPI) or PMI_RANK, PMI_SIZE,
                 MPI_LOCALRANKID (MPICH, Intel MPI); MASTER_ADDR must be exported to every rank
  --nproc N      this module spawns N local processes (a subprocess each, on 127.0.0.1 and a free port)
  none of these  a single rank

Watchdog (--nproc): every spawned rank writes to a pipe of the parent a line per step it starts and,
from a thread, a heartbeat each second that says whether (and for how long) the rank is inside a
collective call. The parent ends the run, kills what is left and names the rank, when
  - a rank exits abnormally (killed by a signal, or an error exit): that rank, signals first;
  - a rank's heartbeat stops for the timeout (stopped, or stuck while holding the interpreter);
  - a rank has been inside one collective call for the timeout: the rank that went silent or that
    is not in the call is the one holding the others up; if every rank is in it, the call hangs.
A slow run is not a hung one: only a single call that outlasts the timeout counts.
Under an external launcher, the process group's own timeout (set to --timeout) turns a hang into an
error; each rank publishes its step in the group's store, so the error names the ranks behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from datetime import timedelta

PLAN_ENV = "ZHISUAN_COLLECTIVE_PLAN"
PROGRESS_FD_ENV = "ZHISUAN_COLLECTIVE_PROGRESS_FD"
HEARTBEAT_S = 1.0
GRACE_S = 3.0  # after one rank fails, how long the others get to exit on their own


@dataclass(frozen=True)
class RankEnv:
    rank: int
    world: int
    local_rank: int
    local_world: int
    master_addr: str | None
    master_port: int | None
    launcher: str  # torchrun | slurm | mpi | spawn | single


SINGLE = RankEnv(0, 1, 0, 1, None, None, "single")


def _int(environ, name: str) -> int:
    try:
        return int(environ[name])
    except ValueError:
        raise ValueError(f"environment variable {name}={environ[name]!r} is not an integer") from None


def first_slurm_host(nodelist: str) -> str:
    """'gpu[01-04,07],cpu5' -> 'gpu01' (the first host of a Slurm node list)."""
    match = re.match(r"^([^,\[]+)(?:\[([^\]]+)\])?([^,]*)", nodelist.strip())
    if not match:
        raise ValueError(f"cannot read the Slurm node list {nodelist!r}; set MASTER_ADDR")
    prefix, ranges, suffix = match.groups()
    if ranges is None:
        return prefix + suffix
    first = ranges.split(",")[0].split("-")[0]
    return prefix + first + suffix


def discover(environ=None) -> RankEnv | None:
    """The rank this process is, from its launcher's environment; None when no launcher started it."""
    env = os.environ if environ is None else environ
    addr = env.get("MASTER_ADDR")
    port = _int(env, "MASTER_PORT") if "MASTER_PORT" in env else None
    if "RANK" in env and "WORLD_SIZE" in env:
        world = _int(env, "WORLD_SIZE")
        local_world = _int(env, "LOCAL_WORLD_SIZE") if "LOCAL_WORLD_SIZE" in env else world
        launcher = "spawn" if PLAN_ENV in env else "torchrun"
        local = _int(env, "LOCAL_RANK") if "LOCAL_RANK" in env else 0
        return RankEnv(_int(env, "RANK"), world, local, local_world, addr, port, launcher)
    if "SLURM_PROCID" in env and ("SLURM_STEP_NUM_TASKS" in env or "SLURM_NTASKS" in env):
        world = _int(env, "SLURM_STEP_NUM_TASKS" if "SLURM_STEP_NUM_TASKS" in env else "SLURM_NTASKS")
        if world > 1:
            nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or ""
            if addr is None and not nodelist:
                raise ValueError("Slurm: neither MASTER_ADDR nor SLURM_STEP_NODELIST is set")
            addr = addr or first_slurm_host(nodelist)
            if port is None:  # the same on every rank of the job, and unlikely to collide
                port = 20000 + _int(env, "SLURM_JOB_ID") % 20000 if "SLURM_JOB_ID" in env else 29500
            local = _int(env, "SLURM_LOCALID") if "SLURM_LOCALID" in env else 0
            tasks = env.get("SLURM_STEP_TASKS_PER_NODE", env.get("SLURM_NTASKS_PER_NODE", "1"))
            local_world = int(re.match(r"\d+", tasks).group()) if re.match(r"\d+", tasks) else 1
            return RankEnv(_int(env, "SLURM_PROCID"), world, local, local_world, addr, port, "slurm")
    for rank_var, size_var, local_var, local_size_var in (
        (
            "OMPI_COMM_WORLD_RANK",
            "OMPI_COMM_WORLD_SIZE",
            "OMPI_COMM_WORLD_LOCAL_RANK",
            "OMPI_COMM_WORLD_LOCAL_SIZE",
        ),
        ("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"),
    ):
        if rank_var in env and size_var in env and _int(env, size_var) > 1:
            if addr is None:
                raise ValueError(
                    "mpirun: set MASTER_ADDR (rank 0's host) for every rank, e.g. mpirun -x MASTER_ADDR=host0"
                )
            local = _int(env, local_var) if local_var in env else 0
            local_world = _int(env, local_size_var) if local_size_var in env else 1
            return RankEnv(
                _int(env, rank_var), _int(env, size_var), local, local_world, addr, port or 29500, "mpi"
            )
    return None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- progress reporting (rank side) ---------------------------------------------------------------


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


class PipeProgress(Progress):
    """A spawned rank's channel to the parent's watchdog.

    Lines: `step LABEL` when a step starts; `beat` every HEARTBEAT_S from a thread, or `beat S` while
    the rank has been inside one collective call for S seconds.
    """

    def __init__(self, fd: int):
        self.fd = fd
        self.lock = threading.Lock()
        self.since: float | None = None  # when the current collective call began
        self._send("beat")
        threading.Thread(target=self._beat, name="zhisuan-heartbeat", daemon=True).start()

    def _send(self, line: str) -> None:
        # OSError: the parent is gone; the run ends with it
        with self.lock, contextlib.suppress(OSError):
            os.write(self.fd, (line.replace("\n", " ")[:400] + "\n").encode())

    def _beat(self) -> None:
        while True:
            time.sleep(HEARTBEAT_S)
            since = self.since
            self._send("beat" if since is None else f"beat {time.monotonic() - since:.3f}")

    def step(self, label: str) -> None:
        self._send(f"step {label}")

    def enter(self) -> None:
        self.since = time.monotonic()

    def leave(self) -> None:
        self.since = None


class StoreProgress(Progress):
    """Under an external launcher: each rank's current step, kept in the process group's store."""

    def __init__(self, rank: int, world: int):
        import torch.distributed as dist

        self.rank, self.world, self.steps = rank, world, 0
        self.store = dist.distributed_c10d._get_default_store()

    def step(self, label: str) -> None:
        self.steps += 1
        self.store.set(f"zhisuan/step/{self.rank}", f"{self.steps} {label}")

    def peers_behind(self) -> str:
        """'; rank 3 is behind (step 4 ...)' for the ranks with fewer steps, as far as readable."""
        try:
            self.store.set_timeout(timedelta(seconds=5))
            steps = {}
            for r in range(self.world):
                key = f"zhisuan/step/{r}"
                steps[r] = self.store.get(key).decode() if self.store.check([key]) else "0 not started"
        except Exception as exc:  # the store lives on rank 0: unreachable when rank 0 is gone
            return f"; the ranks' progress is unreadable ({exc}): rank 0, which holds it, may be down"
        counts = {r: int(text.split(" ", 1)[0]) for r, text in steps.items()}
        behind = [r for r, c in counts.items() if c < max(counts.values())]
        return "".join(f"; rank {r} is behind (step {steps[r]})" for r in behind)


# ---- the rank's life ----------------------------------------------------------------------------


def init_ranks(env: RankEnv, plan):
    """Join the process group; returns the driver's RankContext."""
    import torch
    import torch.distributed as dist

    from zhisuan.bench.collectives.driver import RankContext

    timeout = timedelta(seconds=plan.timeout_s)
    device = torch.device(plan.device)
    if device.type == "cuda":
        index = env.local_rank % torch.cuda.device_count()
        torch.cuda.set_device(index)
        device = torch.device("cuda", index)
    elif device.type == "npu":
        import torch_npu  # noqa: F401  (registers the npu device and the hccl backend)

        index = env.local_rank % torch.npu.device_count()
        torch.npu.set_device(index)
        device = torch.device("npu", index)
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
    """Run the plan as this rank; errors become one line on stderr and exit code 3 (2: bad input)."""
    import torch
    import torch.distributed as dist

    from zhisuan.bench.collectives import driver
    from zhisuan.bench.collectives.summary import EXIT_CRASH, EXIT_USAGE

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, env.local_world)))
    try:
        driver.validate_world(plan, env.world)
    except ValueError as exc:
        if env.rank == 0:
            print(f"zhisuan: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        ctx = init_ranks(env, plan)
        # Under an external launcher every rank parsed its own command line: rank 0's plan (its
        # random seed above all: the check data must agree) is the one that runs.
        shared = [plan]
        dist.broadcast_object_list(shared, src=dist.get_global_rank(ctx.control, 0), group=ctx.control)
        plan = shared[0]
        if progress is None:
            progress = StoreProgress(env.rank, env.world) if env.world > 1 else Progress()
        code = driver.run(plan, ctx, progress)
        # Leave together: no rank tears its sockets down while a peer may still be reading from it.
        dist.barrier(group=ctx.control)
        return code
    except Exception as exc:
        hint = progress.peers_behind() if progress is not None else ""
        print(f"zhisuan collective: rank {env.rank}: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
        return EXIT_CRASH
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


# ---- spawning and the watchdog (parent side) -------------------------------------------------------


def _run_function(rank: int, nproc: int, port: int, backend: str, timeout_s: float, fn, args) -> None:
    import torch
    import torch.distributed as dist

    from zhisuan.bench.collectives.driver import RankContext

    torch.set_num_threads(1)
    dist.init_process_group(
        backend,
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=nproc,
        timeout=timedelta(seconds=timeout_s),
    )
    try:
        group = dist.group.WORLD
        control = group if backend == "gloo" else dist.new_group(backend="gloo")
        fn(RankContext(rank, nproc, group, control, torch.device("cpu")), *args)
    finally:
        dist.destroy_process_group()


def run_function(fn, nproc: int, *args, backend: str = "gloo", timeout_s: float = 120.0) -> None:
    """Run fn(ctx, *args) on nproc local processes joined in one process group (ctx: RankContext).

    fn must be importable by name (a module-level function). An exception on any rank is raised
    here, with that rank's traceback.
    """
    import torch.multiprocessing as mp

    mp.spawn(_run_function, args=(nproc, free_port(), backend, timeout_s, fn, args), nprocs=nproc, join=True)


def rank_timeout(watchdog_timeout_s: float) -> float:
    return 1.5 * watchdog_timeout_s + 5.0


def cpu_sets(nproc: int) -> list[set[int]] | None:
    """Disjoint sets of this process's CPUs, one per rank; None when there are fewer CPUs than ranks."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < nproc:
        return None
    return [set(cpus[r * len(cpus) // nproc : (r + 1) * len(cpus) // nproc]) for r in range(nproc)]


def spawn_ranks(module: str, nproc: int, env: dict[str, str], timeout_s: float, bind: bool = False) -> int:
    """Run `python -m module` as nproc local ranks under the watchdog; returns the run's exit code.

    Each rank gets torchrun's variables (127.0.0.1 and a free port), the extra `env`, and the write
    end of its progress pipe in PROGRESS_FD_ENV (for PipeProgress). With `bind`, each rank is bound
    to its own share of the CPUs (as mpirun --bind-to does), so the scheduler cannot pile ranks that
    wait for each other onto one CPU; there is no binding when there are fewer CPUs than ranks.
    """
    port = free_port()
    sets = cpu_sets(nproc) if bind else None
    procs, fds = [], {}
    for rank in range(nproc):
        read_fd, write_fd = os.pipe()
        rank_env = dict(os.environ)
        rank_env.update(
            RANK=str(rank),
            WORLD_SIZE=str(nproc),
            LOCAL_RANK=str(rank),
            LOCAL_WORLD_SIZE=str(nproc),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
        rank_env.update(env)
        rank_env[PROGRESS_FD_ENV] = str(write_fd)
        rank_env.setdefault(
            "OMP_NUM_THREADS", str(len(sets[rank]) if sets else max(1, (os.cpu_count() or 1) // nproc))
        )
        procs.append(subprocess.Popen([sys.executable, "-m", module], env=rank_env, pass_fds=(write_fd,)))
        if sets:
            os.sched_setaffinity(procs[-1].pid, sets[rank])
        os.close(write_fd)
        fds[read_fd] = rank
    return Watchdog(procs, fds, timeout_s).wait()


def spawn(nproc: int, plan, timeout_s: float) -> int:
    """Run the plan on nproc local processes; returns the run's exit code."""
    # The ranks' own timeouts (process group, shm barriers) are longer than the watchdog's, so the
    # watchdog, which sees every rank, is the one to diagnose a hang.
    plan_json = json.dumps(asdict(replace(plan, timeout_s=rank_timeout(timeout_s))))
    return spawn_ranks("zhisuan.bench.collectives.worker", nproc, {PLAN_ENV: plan_json}, timeout_s, plan.bind)


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
        self.buffers = {fd: b"" for fd in fds}
        self.selector = selectors.DefaultSelector()
        for fd in fds:
            self.selector.register(fd, selectors.EVENT_READ)

    def _read(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            fd = key.fd
            data = os.read(fd, 65536)
            if not data:
                self.selector.unregister(fd)
                os.close(fd)
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
                if any(c is not None and c not in (0, 1, 2) for c in codes):
                    return self._fail_after_exit()
                if all(c is not None for c in codes):
                    return max(codes)
                now = time.monotonic()
                running = [r for r, c in enumerate(codes) if c is None]
                silent = [r for r in running if self._silent_for(r, now) > self.timeout_s]
                if silent:
                    return self._fail([self._stopped(r, now) for r in silent])
                if any(self._waiting_for(r, now) > self.timeout_s for r in running):
                    return self._fail(self._hung_call(running, now))
        except KeyboardInterrupt:
            self._kill_all()
            print("zhisuan collective: interrupted; ranks stopped", file=sys.stderr)
            return 130
        finally:
            for key in list(self.selector.get_map().values()):
                os.close(key.fd)
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

    def _fail(self, lines: list[str]) -> int:
        from zhisuan.bench.collectives.summary import EXIT_CRASH

        self._kill_all()
        for line in lines:
            print(f"zhisuan collective: {line}", file=sys.stderr)
        return EXIT_CRASH

    def _kill_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()  # SIGKILL also ends a stopped process
        for p in self.procs:
            p.wait()
