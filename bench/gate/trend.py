"""The trend of one benchmark over runs: a verdict for each run, and a PNG plot with regressions marked.

Each run is judged by the gate's own rule (zhisuan.bench.gate.decision.assess) against a reference: the pinned
baseline when one is given, else the previous successful run (so a step shows where it happened).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from zhisuan.bench.core.errors import UsageError
from zhisuan.bench.core.results import Result
from zhisuan.bench.gate import decision
from zhisuan.bench.gate.settings import GateSettings


@dataclass(frozen=True)
class Point:
    result: Result
    reference: Result | None  # what it was judged against
    ratio: float | None
    verdict: str | None  # None: not judged (first run, failed run, too few samples)


def _timed(r: Result) -> bool:
    return (
        r.timed and not r.interpreted and r.median_s is not None and len(r.samples_s) >= 2
        and min(r.samples_s) > 0
    )  # fmt: skip


def judge(results: list[Result], settings: GateSettings, baseline: Result | None = None) -> list[Point]:
    """A verdict per result, oldest first, against `baseline` or the previous timed result."""
    points, previous = [], None
    for r in results:
        reference = baseline if baseline is not None else previous
        if not _timed(r) or reference is None or not _timed(reference) or r is reference:
            points.append(Point(r, reference, None, None))
        else:
            threshold, alpha = settings.for_result(r)
            a = decision.assess(reference.samples_s, r.samples_s, threshold=threshold, alpha=alpha)
            points.append(Point(r, reference, float(a.ratio), str(a.verdict)))
        if _timed(r):
            previous = r
    return points


def plot(points: list[Point], path: str | Path, title: str, baseline: Result | None = None,
         baseline_name: str | None = None) -> Path:  # fmt: skip
    """Median time per run (bars: interquartile range), regressions as red triangles, failures as x."""
    # The Agg canvas directly, not pyplot: no global backend switch, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    timed = [p for p in points if _timed(p.result)]
    if not timed:
        raise UsageError(f"{title}: no run with a timing to plot")
    scale, unit = _unit(float(np.median([p.result.median_s for p in timed])))
    fig = Figure(figsize=(9, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    when = [datetime.fromtimestamp(p.result.timestamp) for p in timed]
    q25, q50, q75 = (
        np.array([np.percentile(p.result.samples_s, q) for p in timed]) / scale for q in (25, 50, 75)
    )
    ax.errorbar(
        when, q50, yerr=[q50 - q25, q75 - q50], fmt="o-", color="tab:blue", capsize=3, label="median (IQR)"
    )
    for verdict, marker, color in ((decision.REGRESSED, "v", "red"), (decision.IMPROVED, "^", "green")):
        marked = [i for i, p in enumerate(timed) if p.verdict == verdict]
        if marked:
            ax.scatter([when[i] for i in marked], q50[marked], marker=marker, s=120, color=color, zorder=3,
                       label=verdict)  # fmt: skip
    failed = [datetime.fromtimestamp(p.result.timestamp) for p in points if p.result.status != "ok"]
    if failed:
        ax.scatter(failed, [q50.min()] * len(failed), marker="x", s=80, color="black", label="failed run")
    if baseline is not None and baseline.median_s:
        ax.axhline(
            baseline.median_s / scale, ls="--", color="gray", label=f"baseline {baseline_name or ''}".strip()
        )
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(f"time per call ({unit})")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, dpi=100, format="png")  # PNG whatever the name; matplotlib hides write errors,
    path = Path(path)  # so the bytes are written here, where a full disk is an error
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png.getvalue())
    except OSError as exc:
        raise UsageError(f"cannot write the plot to {path}: {exc.strerror or exc}") from None
    return path


def _unit(seconds: float) -> tuple[float, str]:
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if seconds >= scale:
            return scale, unit
    return 1e-9, "ns"
