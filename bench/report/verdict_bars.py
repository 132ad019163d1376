"""The validation chart: each check's value as a fraction of its threshold basis, one horizontal bar
per check result, coloured by verdict, with the PASS and WARN fractions it was judged by marked on it.

Horizontal bars keep 15-60 labels readable (one per line, never rotated); the figure grows with the
number of bars. A result without a fraction (a count judged against 0, a crash with no value) gets a
marker in its verdict's colour and its value in words instead of a bar; so does a bar too short to see.
"""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from zhisuan.bench.report import plots

CAP = 4.0  # bars beyond 400% of their basis are cut there (hatched); their text gives the value
PASS_COLOUR, WARN_COLOUR = "#15803d", "#b45309"
ORDER = ("PASS", "WARN", "FAIL")  # the legend's order
ROW_IN = 0.27  # inches per bar: 8-point labels one per line, never touching


@dataclass
class VerdictBar:
    label: str
    verdict: str  # PASS, WARN, FAIL (colours the bar), or anything else (grey)
    ratio: float | None  # value / basis; None: a marker and the text only
    text: str  # written at the end of the bar: the value, or what stands for it
    pass_at: float | None = None  # the PASS fraction of the basis
    warn_at: float | None = None
    low: float | None = None  # a summary bar's spread over ranks (min, max fractions)
    high: float | None = None


def verdict_bars(bars: list[VerdictBar], *, title: str) -> Figure:
    fig, (ax,) = plots.new_figure(height=max(2.8, 1.3 + ROW_IN * len(bars)))
    fractions = [v for b in bars for v in (b.ratio, b.pass_at, b.warn_at, b.high) if v is not None]
    cap = min(max(fractions + [1.0]), CAP)
    right = 100 * cap * 1.3  # room for the text after the longest bar
    for row, bar in enumerate(bars):
        colour = plots.VERDICT_COLOURS.get(bar.verdict, "#71717a")
        end = 0.0 if bar.ratio is None else 100 * min(bar.ratio, cap)
        if bar.ratio is not None:
            ax.barh(row, end, height=0.68, color=colour, hatch="//" if bar.ratio > cap else None, zorder=2)
        if end < right * 0.01:  # no bar, or one too short to see: a square shows the verdict
            ax.plot([0], [row], marker="s", markersize=7, color=colour, clip_on=False, zorder=3)
        if bar.low is not None and bar.high is not None:
            ax.plot([100 * bar.low, 100 * min(bar.high, cap)], [row, row], color="#27272a", linewidth=1.2)
            ax.plot([100 * bar.low, 100 * min(bar.high, cap)], [row] * 2, "|", color="#27272a", markersize=8)
            end = max(end, 100 * min(bar.high, cap))
        for at, colour_, style in ((bar.pass_at, PASS_COLOUR, "-"), (bar.warn_at, WARN_COLOUR, "--")):
            if at is not None:
                ax.vlines(
                    100 * at, row - 0.45, row + 0.45, colors=colour_, linestyles=style, linewidth=2, zorder=4
                )
        marks = [100 * at for at in (bar.pass_at, bar.warn_at) if at is not None and at <= cap]
        ax.text(
            max([end] + marks) + right * 0.012,  # clear of the bar and of its marks
            row,
            bar.text,
            va="center",
            fontsize=7.5,
            color="#27272a",
            zorder=5,
            bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.75},
        )
    ax.axvline(100, color="#a1a1aa", linewidth=1, zorder=1)
    ax.set_yticks(range(len(bars)), [b.label for b in bars], fontsize=8)
    ax.set_ylim(len(bars) - 0.5, -0.5)  # the first bar on top
    ax.set_xlim(0, right)
    ax.grid(False, axis="y")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}%"))
    ax.set_xlabel("value as a percentage of its threshold basis (the figure the verdict was judged against)")
    ax.set_title(title, fontsize=11, loc="left")
    verdicts = sorted(
        {b.verdict for b in bars}, key=lambda v: (ORDER.index(v) if v in ORDER else len(ORDER), v)
    )
    handles = [Patch(color=plots.VERDICT_COLOURS.get(v, "#71717a"), label=v) for v in verdicts]
    handles += [
        Line2D([], [], color=PASS_COLOUR, linewidth=2, label="PASS fraction"),
        Line2D([], [], color=WARN_COLOUR, linewidth=2, linestyle="--", label="WARN fraction"),
        Line2D([], [], color="#a1a1aa", linewidth=1, label="100% of the basis"),
    ]
    if any(b.ratio is not None and b.ratio > cap for b in bars):
        handles.append(
            Patch(facecolor="white", edgecolor="#3f3f46", hatch="//", label=f"cut at {100 * cap:g}%")
        )
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return fig
