"""The trend chart of one benchmark: commits on the x-axis, one point per run, regressions marked.

Commits are placed in the order their first run measured (the history's run order) and labelled
with short SHAs; several runs of one commit sit side by side at its place, and the line joins the
median of each commit's runs. Drawn in the report's style (report/plots.py: size, palette, grid)
with matplotlib's Agg canvas: no display, no pyplot state.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from zhisuan.bench.core.errors import UsageError
from zhisuan.bench.gate import decision, run_spread
from zhisuan.bench.gate.trend import Point
from zhisuan.bench.report import plots

SHORT_SHA = 7
MAX_TICK_LABELS = 40  # beyond this many commits, every k-th is labelled
RUN_SPREAD_WIDTH = 0.4  # of one commit's slot, where its several runs are spread side by side
MARKS = {  # verdict: marker, colour, legend; a slowdown points up (the time went up)
    decision.REGRESSED: ("^", plots.PEAK_COLOUR, "regressed (the gate's verdict)"),
    decision.IMPROVED: ("v", "#15803d", "improved"),
}


def plain(text: str) -> str:
    """Text for matplotlib as it is: a '$' would start TeX (and broken TeX fails the drawing)."""
    return text.replace("$", r"\$")


def commit_key(point: Point) -> str:
    """What groups runs on the x-axis: the commit, or the run itself when it recorded none."""
    return point.commit or f"run:{point.result.run_id}"


def commit_label(key: str) -> str:
    return key[len("run:") :][:15] if key.startswith("run:") else key[:SHORT_SHA]


def commit_positions(points: list[Point]) -> tuple[list[str], list[float]]:
    """(commit keys in first-seen order, an x position per point)."""
    order: dict[str, int] = {}
    for p in points:
        order.setdefault(commit_key(p), len(order))
    counts = {k: 0 for k in order}
    for p in points:
        counts[commit_key(p)] += 1
    seen = {k: 0 for k in order}
    xs = []
    for p in points:
        key = commit_key(p)
        n, i = counts[key], seen[key]
        seen[key] += 1
        offset = 0.0 if n == 1 else RUN_SPREAD_WIDTH * (i / (n - 1) - 0.5)
        xs.append(order[key] + offset)
    return list(order), xs


def time_unit(seconds: float) -> tuple[float, str]:
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if seconds >= scale:
            return scale, unit
    return 1e-9, "ns"


def trend_figure(points: list[Point], title: str, baseline_median_s: float | None = None,
                 baseline_name: str | None = None) -> Figure:  # fmt: skip
    """Median time per run (bars: interquartile range) against its commit; the gate's regressions as
    red triangles, failed runs as crosses on the floor, a pinned baseline as a dashed line."""
    keys, xs = commit_positions(points)
    timed = [i for i, p in enumerate(points) if run_spread.timed(p.result)]
    if not timed:
        raise UsageError(f"{title}: no run with a timing to plot")
    scale, unit = time_unit(float(np.median([points[i].result.median_s for i in timed])))
    fig = Figure(figsize=(plots.WIDTH_IN, plots.HEIGHT_IN), layout="constrained")
    ax = fig.add_subplot()
    ax.grid(True, which="major", color="#e4e4e7", linewidth=0.7)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)

    x = np.array([xs[i] for i in timed])
    q25, q50, q75 = (
        np.array([np.percentile(points[i].result.samples_s, q) for i in timed]) / scale for q in (25, 50, 75)
    )
    ax.errorbar(x, q50, yerr=[q50 - q25, q75 - q50], fmt="o", color=plots.PALETTE[0], markersize=4,
                capsize=2, linewidth=1, label="run: median (IQR)")  # fmt: skip
    per_commit: dict[int, list[float]] = {}
    for xi, m in zip(x, q50, strict=True):
        per_commit.setdefault(round(xi), []).append(m)
    line_x = sorted(per_commit)
    ax.plot(line_x, [np.median(per_commit[c]) for c in line_x], "-", color=plots.PALETTE[0], linewidth=1.4,
            alpha=0.6, label="median of the commit's runs")  # fmt: skip
    for verdict, (marker, colour, legend) in MARKS.items():
        marked = [j for j, i in enumerate(timed) if points[i].verdict == verdict]
        if marked:
            ax.scatter(x[marked], q50[marked], marker=marker, s=110, color=colour, zorder=3, label=legend)
    failed = [xs[i] for i, p in enumerate(points) if p.result.status != "ok"]
    if failed:
        ax.scatter(failed, [q50.min()] * len(failed), marker="x", s=70, color="black", zorder=3,
                   label="failed run")  # fmt: skip
    if baseline_median_s:
        label = plain(f"baseline {baseline_name or ''}".strip())
        ax.axhline(baseline_median_s / scale, ls="--", color="#71717a", linewidth=1.2, label=label)

    step = max(1, math.ceil(len(keys) / MAX_TICK_LABELS))
    ticks = list(range(0, len(keys), step))
    many = len(ticks) > 12
    ax.set_xticks(ticks, [plain(commit_label(keys[t])) for t in ticks], rotation=60 if many else 0,
                  ha="right" if many else "center", fontsize=8, family="monospace")  # fmt: skip
    ax.set_xlim(-0.6, len(keys) - 0.4)
    ax.set_title(plain(title), fontsize=11, loc="left")
    ax.set_xlabel(f"commit (oldest to newest, {len(keys)} commit(s), {len(points)} run(s))")
    ax.set_ylabel(f"time per call ({unit})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return fig
