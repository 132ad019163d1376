"""Rank 0's side: summarise every rank's samples, print the nccl-tests table, write the results.

Times: each rank times every iteration; iteration i's time is the ranks' times combined by -a
(0: rank 0's, 1: their mean (the default, as nccl-tests), 2: the fastest, 3: the slowest), and the
`time` column is the mean of those over the iterations, so with -a 1 it is nccl-tests' number:
every rank's loop time / iters, averaged over ranks. The spread columns pool the raw samples of
every rank and iteration (p50, p95, max) and name the rank with the slowest mean; they describe
the in-place run, or the out-of-place one where there is no in-place form.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import torch

from zhisuan.bench.collectives.ops import Collective
from zhisuan.bench.collectives.sizes import format_size
from zhisuan.bench.core import chips, stats
from zhisuan.bench.core.environment import environment
from zhisuan.bench.core.errors import EXIT_FAILED, EXIT_OK
from zhisuan.bench.core.result_files import ResultWriter
from zhisuan.bench.core.results import Result
from zhisuan.kernels.registry import dtype_name

_COMBINE = {1: np.mean, 2: np.min, 3: np.max}
AVERAGE_NAMES = {0: "rank 0", 1: "mean over ranks", 2: "min over ranks", 3: "max over ranks"}


@dataclass
class Row:
    """One (collective, dtype, op, size, placement): its summary over all ranks."""

    collective: Collective
    dtype: str
    op: str | None
    impl: str
    root: int
    size: int  # bytes, as reported: count * itemsize
    count: int
    in_place: bool
    samples_s: list[float]  # per iteration, ranks combined by -a
    time_s: float
    algbw: float  # bytes/s
    busbw: float  # bytes/s
    wrong: int
    p50_s: float
    p95_s: float
    max_s: float
    slowest_rank: int
    per_rank: list[dict]


def summarize_samples(
    case, root: int, in_place: bool, gathered: list[tuple[list[float], int]], average: int
) -> Row:
    """Combine every rank's (samples, wrong) for a driver Case into a Row (see the module docstring)."""
    coll, dtype, count = case.collective, case.dtype, case.count
    n = len(gathered)
    per_rank = np.array([samples for samples, _ in gathered], dtype=np.float64)  # ranks x iterations
    combined = per_rank[0] if average == 0 else _COMBINE[average](per_rank, axis=0)
    time_s = float(np.mean(combined))
    nbytes = coll.bytes(count, torch.tensor([], dtype=dtype).element_size())
    algbw = nbytes / time_s if time_s > 0 else 0.0
    means = per_rank.mean(axis=1)
    return Row(
        collective=coll,
        dtype=dtype_name(dtype),
        op=case.op,
        impl=case.impl,
        root=root if coll.rooted else -1,
        size=nbytes,
        count=count,
        in_place=in_place,
        samples_s=[float(x) for x in np.atleast_1d(combined)],
        time_s=time_s,
        algbw=algbw,
        busbw=algbw * coll.bus_factor(n),
        wrong=sum(wrong for _, wrong in gathered),
        p50_s=float(np.percentile(per_rank, 50)),
        p95_s=float(np.percentile(per_rank, 95)),
        max_s=float(per_rank.max()),
        slowest_rank=int(np.argmax(means)),
        per_rank=[
            {
                "rank": r,
                "mean_s": float(means[r]),
                "p50_s": float(np.percentile(per_rank[r], 50)),
                "p95_s": float(np.percentile(per_rank[r], 95)),
                "max_s": float(per_rank[r].max()),
            }
            for r in range(n)
        ],
    )


def _us(seconds: float) -> str:
    us = seconds * 1e6
    return f"{us:8.2f}" if us < 1e5 else f"{us:8.0f}"


def _placement(row: Row | None, checked: bool) -> str:
    if row is None:
        return f"{'n/a':>8} {'n/a':>7} {'n/a':>7} {'n/a':>6}"
    wrong = str(row.wrong) if checked else "N/A"
    return f"{_us(row.time_s)} {row.algbw / 1e9:7.2f} {row.busbw / 1e9:7.2f} {wrong:>6}"


# nccl-tests' columns, in its order (scripts read them by position), then ours: the implementation
# and the spread over ranks and iterations.
HEADER = (
    f"#{'':>45}{'out-of-place':>20}{'':>12}{'in-place':>20}{'':>12}{'':>9}{'spread':>20}\n"
    f"#{'size':>11} {'count':>12} {'type':>6} {'redop':>6} {'root':>5} "
    f"{'time':>8} {'algbw':>7} {'busbw':>7} {'#wrong':>6} "
    f"{'time':>8} {'algbw':>7} {'busbw':>7} {'#wrong':>6} "
    f"{'impl':>8} {'p50':>8} {'p95':>8} {'max':>8} {'slow':>5}\n"
    f"#{'(B)':>11} {'(elements)':>12} {'':>6} {'':>6} {'':>5} "
    f"{'(us)':>8} {'(GB/s)':>7} {'(GB/s)':>7} {'':>6} "
    f"{'(us)':>8} {'(GB/s)':>7} {'(GB/s)':>7} {'':>6} "
    f"{'':>8} {'(us)':>8} {'(us)':>8} {'(us)':>8} {'rank':>5}"
)


def format_line(out_row: Row, in_row: Row | None, checked: bool) -> str:
    spread = in_row or out_row
    return (
        f"{out_row.size:12d} {out_row.count:12d} {out_row.dtype:>6} {out_row.op or 'none':>6} {out_row.root:5d} "
        f"{_placement(out_row, checked)} {_placement(in_row, checked)} "
        f"{out_row.impl:>8} {_us(spread.p50_s)} {_us(spread.p95_s)} {_us(spread.max_s)} {spread.slowest_rank:5d}"
    )


class Report:
    """Prints the table as rows arrive, writes one Result per row, and decides the exit code."""

    def __init__(self, plan, n: int, device: torch.device, out=None):
        self.plan = plan
        self.n = n
        self.out = out or sys.stdout
        self.device_name = chips.detect(str(device)).name
        self.writer = ResultWriter(plan.json_path) if plan.json_path else None
        self.busbw: dict[str, list[float]] = {}  # per implementation
        self.wrong = 0
        self.current: tuple | None = None  # (collective, dtype, op) of the table being printed

    def print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def summarize(self, case, in_place: bool, gathered) -> Row:
        return summarize_samples(case, self.plan.root, in_place, gathered, self.plan.average)

    def _title(self, row: Row) -> None:
        key = (row.collective.name, row.dtype, row.op)
        if key == self.current:
            return
        self.current = key
        self.print(
            f"#\n# {row.collective.name} ({row.collective.summary}): {self.n} rank{'s' if self.n > 1 else ''}, "
            f"torch.distributed "
            f"{self.plan.backend}, {self.plan.device} ({self.device_name}), iters {self.plan.iters}, "
            f"warmup {self.plan.warmup}, check {self.plan.check}, time = {AVERAGE_NAMES[self.plan.average]}"
        )
        self.print(HEADER)

    def skipped(self, case) -> None:
        self.print(
            f"# skipped {case.collective.name} {dtype_name(case.dtype)} at {format_size(case.size)}: fewer "
            f"elements than the {self.n} ranks need"
        )

    def emit(self, rows: list[Row]) -> None:
        out_row = rows[0]
        in_row = rows[1] if len(rows) > 1 else None
        self._title(out_row)
        self.print(format_line(out_row, in_row, self.plan.check > 0))
        for row in rows:
            self.busbw.setdefault(row.impl, []).append(row.busbw)
            self.wrong += row.wrong
            if self.writer:
                self.writer.write(self.to_result(row))

    def to_result(self, row: Row) -> Result:
        plan = self.plan
        summary = stats.summarize(row.samples_s)
        backend = plan.backend if row.impl == "torch" else row.impl
        checked = plan.check > 0
        if not checked:  # timed, but nobody looked at the data (nccl-tests prints N/A)
            status, error = "unchecked", "not checked (-c 0): the result's data were not compared"
        elif row.wrong:
            status, error = "check-failed", f"{row.wrong} wrong element(s)"
        else:
            status, error = "ok", None
        return Result(
            kind="collective",
            op=row.collective.name,
            backend=backend,
            shape={"bytes": row.size, "count": row.count, "ranks": self.n},
            dtype=row.dtype,
            device=plan.device,
            device_name=self.device_name,
            status=status,
            error=error,
            samples_s=row.samples_s,
            median_s=summary.median_s,
            iqr_s=summary.iqr_s,
            cv=summary.cv,
            bytes=row.size,
            bytes_per_s=row.algbw,
            check={
                "wrong": row.wrong if checked else None,
                "passed": row.wrong == 0 if checked else None,
                "checked": checked,
                "rule": "exact" if checked else None,
            },
            extra={
                "op": row.op,
                "root": row.root,
                "in_place": row.in_place,
                "impl": row.impl,
                "torch_backend": plan.backend,
                "time_s": row.time_s,
                "algbw": row.algbw,
                "busbw": row.busbw,
                "bus_factor": row.collective.bus_factor(self.n),
                "wrong": row.wrong if checked else None,
                "p50_s": row.p50_s,
                "p95_s": row.p95_s,
                "max_s": row.max_s,
                "slowest_rank": row.slowest_rank,
                "per_rank": row.per_rank,
                "average": plan.average,
                "iters": plan.iters,
                "warmup": plan.warmup,
                "blocking": plan.blocking,
                "cudagraph": plan.cudagraph,
                "bind": plan.bind,
            },
            env=environment(),
            run_id=plan.run_id,
        )

    def close(self) -> None:
        if self.writer:
            self.writer.close()

    def finish(self) -> int:
        """Footer lines; 1 when data were wrong or the average busbw fell short, else 0."""
        self.close()
        if not self.busbw:
            self.print("# nothing measured")
            return EXIT_FAILED
        average = float(np.mean([bw for values in self.busbw.values() for bw in values]))
        checked = self.plan.check > 0
        self.print(
            f"# Out of bounds values : {self.wrong} {'OK' if self.wrong == 0 else 'FAILED'}"
            if checked
            else "# Out of bounds values : not checked (-c 0)"
        )
        self.print(f"# Avg bus bandwidth    : {average / 1e9:.4g} GB/s")
        if len(self.busbw) > 1:
            for impl, values in self.busbw.items():
                self.print(f"#   impl {impl:<14}: {float(np.mean(values)) / 1e9:.4g} GB/s")
        failed = self.wrong > 0
        if self.plan.min_busbw is not None:
            ok = average / 1e9 >= self.plan.min_busbw
            self.print(f"# --min-busbw {self.plan.min_busbw:g} GB/s: {'passed' if ok else 'FAILED'}")
            failed |= not ok
        if self.plan.json_path:
            self.print(f"# results: {self.plan.json_path}")
        return EXIT_FAILED if failed else EXIT_OK
