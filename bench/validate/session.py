"""One rank's validation run: join the ranks, run the checks in order, gather to rank 0, conclude.

Every rank runs every check at the same time (a barrier before each, so all devices are measured
under the same conditions). After each check the ranks' records go to rank 0, which writes them
to the JSON Lines file at once: a crash or Ctrl-C keeps every check that finished. At the end
rank 0 adds the cluster view (zhisuan.bench.validate.cluster), writes the summary record, prints the
tables and hands the records to the report writer when there is one. The exit code (1 when
anything FAILs) is shared, so every rank exits alike.

A single process is a world of one (a process group of one member), so one code path serves a
workstation and a 3,000-GPU cluster.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

from zhisuan.bench.core import chips, threads
from zhisuan.bench.core.console import console
from zhisuan.bench.core.environment import environment
from zhisuan.bench.core.result_files import ResultWriter
from zhisuan.bench.core.results import Result
from zhisuan.bench.validate import (
    attention,
    burnin,
    cluster,
    integrity,
    interconnect,
    matmul,
    stream,
    terminal,
)
from zhisuan.bench.validate.context import CheckContext
from zhisuan.bench.validate.levels import plan_for
from zhisuan.bench.validate.thresholds import load, worst

CHECKS = (
    ("matmul", matmul.run),
    ("stream", stream.run),
    ("attention", attention.run),
    ("interconnect", interconnect.run),
    ("integrity", integrity.run),
    ("burn-in", burnin.run),
)


@dataclass
class Options:
    """Everything a rank needs (JSON-serialisable: it travels to spawned ranks)."""

    level: str
    device: str  # "cpu" or "cuda"
    json_path: str
    run_id: str
    duration_s: float | None = None
    thresholds_path: str | None = None
    margin_pct: float | None = None
    timeout_s: float = 600.0
    report_dir: str | None = None


class StopFlag:
    """Ctrl-C once: finish the current step, then conclude with what ran. Twice: stop at once."""

    def __init__(self):
        self.requested = False
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "zhisuan validate: stopping after the current step (Ctrl-C again to abort at once)",
            file=sys.stderr,
            flush=True,
        )

    def restore(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def collectives_plan(options: Options, backend: str):
    from zhisuan.bench.collectives.driver import SweepPlan

    return SweepPlan(collectives=["all_reduce"], dtypes=["fp32"], ops=["sum"], sizes=[], device=options.device,
                backend=backend, timeout_s=options.timeout_s)  # fmt: skip


class Session:
    def __init__(self, options: Options, rank_ctx, local_world: int, progress):
        self.options = options
        self.progress = progress
        self.rank_ctx = rank_ctx
        self.rank, self.world = rank_ctx.rank, rank_ctx.world
        self.control = rank_ctx.control
        self.stop = StopFlag()
        device = chips.detect(str(rank_ctx.device))
        plan = plan_for(options.level, device.kind, options.duration_s)
        self.thresholds = load(options.thresholds_path)
        self.ctx = CheckContext(
            device=device,
            plan=plan,
            thresholds=self.thresholds,
            run_id=options.run_id,
            env=environment(),
            rank=self.rank,
            world=self.world,
            local_world=local_world,
            dist=rank_ctx,
            should_stop=self.should_stop,
            progress=progress,
        )

    # ---- agreement among ranks (over the gloo control group) -----------------------------------

    @contextlib.contextmanager
    def collective(self):
        """Mark a collective call for the watchdog (a rank waiting too long in one names the others)."""
        self.progress.enter()
        try:
            yield
        finally:
            self.progress.leave()

    def should_stop(self, local: bool = False) -> bool:
        flag = torch.tensor([1 if (local or self.stop.requested) else 0], dtype=torch.int32)
        if self.world > 1:
            with self.collective():
                dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.control)
        return bool(flag.item())

    def barrier(self) -> None:
        with self.collective():
            dist.barrier(group=self.control)

    def gather(self, obj) -> list | None:
        """obj of every rank, in rank order, on rank 0 (None elsewhere)."""
        out = [None] * self.world if self.rank == 0 else None
        with self.collective():
            dist.gather_object(obj, out, dst=dist.get_global_rank(self.control, 0), group=self.control)
        return out

    def share(self, value):
        """rank 0's value, on every rank."""
        box = [value]
        with self.collective():
            dist.broadcast_object_list(box, src=dist.get_global_rank(self.control, 0), group=self.control)
        return box[0]

    # ---- the run ----------------------------------------------------------------------------------

    def member(self) -> cluster.Member:
        device = self.ctx.device
        peak = device.peak(cluster.HEADLINE_DTYPE[device.kind])
        return cluster.Member(
            rank=self.rank,
            host=self.ctx.host,
            device=device.torch_device,
            device_name=device.name,
            kind=device.kind,
            peak_tflops=peak.value if peak else None,
            peak_status=peak.status if peak else None,
            why_no_peak=device.why_no_peak,
        )

    def run_check(self, name: str, check) -> list[Result]:
        self.ctx.begin_check()
        try:
            return check(self.ctx)
        except Exception as exc:  # a check that crashes is a FAIL that says so, not the end of the run
            record = self.ctx.record(name, f"{name} check", dtype="")
            self.ctx.fail(record, f"crashed: {type(exc).__name__}: {exc}", status="error")
            return [self.ctx.finish(record)]

    def run(self) -> int:
        start = time.perf_counter()
        members = self.gather(self.member())
        writer = ResultWriter(self.options.json_path) if self.rank == 0 else None
        records: list[Result] = []
        try:
            if self.rank == 0:
                terminal.announce(self.ctx, members, self.options.json_path)
            interrupted = False
            for name, check in CHECKS:
                if self.should_stop():
                    interrupted = True
                    break
                self.barrier()
                gathered = self.gather(self.run_check(name, check))
                if self.rank == 0:
                    for rank_records in gathered:
                        for record in rank_records:
                            writer.write(record)
                            records.append(record)
                    terminal.progress(name, [r for rr in gathered for r in rr])
            interrupted = interrupted or self.stop.requested
            code = 0
            if self.rank == 0:
                code = self.conclude(records, members, writer, time.perf_counter() - start, interrupted)
            return self.share(code)
        finally:
            if writer is not None:
                writer.close()
            self.stop.restore()

    def conclude(self, records, members, writer, duration_s: float, interrupted: bool) -> int:
        template = self.ctx.record("summary", "Validation summary")
        template.device = f"{len(members)} ranks" if len(members) > 1 else template.device
        added, summary = cluster.summary(
            records,
            members,
            level=self.options.level,
            duration_s=duration_s,
            margin_pct=self.thresholds.margin_pct
            if self.options.margin_pct is None
            else self.options.margin_pct,
            interrupted=interrupted,
            template=template,
        )
        for record in added + [summary]:
            writer.write(record)
        everything = records + added
        terminal.final(everything, summary, self.options.json_path)
        write_report(everything + [summary], self.options)
        return 1 if worst(r.extra.get("verdict", "SKIP") for r in everything + [summary]) == "FAIL" else 0


def write_report(results: list[Result], options: Options) -> None:
    """Hand the records to `zhisuan report`'s writer, when that module exists."""
    if importlib.util.find_spec("zhisuan.bench.report") is None:
        return  # no report module in this installation: the tables above are the output
    out_dir = options.report_dir or os.path.splitext(options.json_path)[0] + "-report"
    try:
        from zhisuan.bench.report import write_report as writer

        path = writer(results, out_dir)
    except Exception as exc:  # the measurements are on disk; a report failure must not hide them
        console.print(f"[yellow]report not written[/yellow]: {type(exc).__name__}: {exc}")
        return
    shown = ", ".join(str(p) for p in path.values()) if isinstance(path, dict) else str(path or out_dir)
    console.print(f"report: {shown}")


def run_rank(options: Options, env, progress=None) -> int:
    """This process's part of the run, as rank env.rank of env.world (a RankEnv of zhisuan.bench.collectives).

    progress: the watchdog's channel of a spawned rank; None under an external launcher (the
    process group's store then keeps each rank's step, so a hang names the ranks behind).
    """
    from zhisuan.bench.collectives import rankrun, watchdog

    backend = "nccl" if options.device == "cuda" else "gloo"
    threads.apply(threads.per_rank(env.local_world))  # the host's cores shared among its ranks
    rank_ctx = rankrun.init_ranks(env, collectives_plan(options, backend))
    try:
        if progress is None:
            progress = watchdog.StoreProgress(env.rank, env.world) if env.world > 1 else watchdog.Progress()
        code = Session(options, rank_ctx, env.local_world, progress).run()
        # Leave together: no rank tears its sockets down while a peer may still be reading from it.
        dist.barrier(group=rank_ctx.control)
        return code
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
