"""The report's charts, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Each function takes plain numbers (already chosen by a section) and returns a matplotlib Figure;
to_png() turns it into PNG bytes. Axes say what they show and in which unit; an axis goes
logarithmic when its values span decades, so small and large sizes both stay readable.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from zhisuan.bench.core import units

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
PEAK_COLOUR = "#b91c1c"
MEASURED_COLOUR = "#c2410c"
BANDWIDTH_COLOUR = "#1d4ed8"
STRAGGLER_COLOUR = "#dc2626"
LOG_X_SPAN = 10.0  # max/min ratio from which an axis is drawn logarithmic
LOG_Y_SPAN = 30.0
WIDTH_IN, HEIGHT_IN, DPI = 10.2, 4.6, 110  # 1122 px: the width of the HTML page's column


@dataclass
class Series:
    label: str
    x: list[float]
    y: list[float]
    colour: str = PALETTE[0]
    linestyle: str = "-"
    marker: str = "o"


@dataclass
class RefLine:
    """A horizontal reference: a peak, a median, a threshold."""

    label: str
    y: float
    colour: str = PEAK_COLOUR
    linestyle: str = "--"


@dataclass
class Track:
    """One device's burn-in samples: time (s) and the metrics sampled with it (None where unread)."""

    label: str
    t: list[float]
    metrics: dict[str, list[float | None]]
    throttled: list[bool] = field(default_factory=list)
    colour: str = PALETTE[0]


def colours(names) -> dict[str, str]:
    """A stable colour per name (sorted), so one backend has one colour in every chart."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(sorted(set(names)))}


def markers(names) -> dict[str, str]:
    return {name: MARKERS[i % len(MARKERS)] for i, name in enumerate(sorted(set(names)))}


def to_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _new_figure(height: float = HEIGHT_IN, rows: int = 1):
    fig = Figure(figsize=(WIDTH_IN, height), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    for ax in axes:
        ax.grid(True, which="major", color="#e4e4e7", linewidth=0.7)
        ax.set_axisbelow(True)
        ax.spines[["top", "right"]].set_visible(False)
    return fig, axes


def _spans_decades(values, span: float) -> bool:
    positive = [v for v in values if v is not None and v > 0]
    return bool(positive) and len(positive) == len(values) and max(positive) / min(positive) >= span


def _notes(ax, notes) -> None:
    if notes:
        ax.text(
            0.01,
            0.02,
            "\n".join(notes),
            transform=ax.transAxes,
            fontsize=8,
            va="bottom",
            ha="left",
            color="#3f3f46",
            bbox={"boxstyle": "round", "facecolor": "#fafafa", "edgecolor": "#d4d4d8"},
        )


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _plain_log_ticks(axis, unit: str | None = None) -> None:
    """Decade ticks as '100' or '10 GFLOP' rather than 10^2, 10^10."""
    label = (lambda v, _: units.rate(v, unit)) if unit else (lambda v, _: f"{v:g}")
    axis.set_major_formatter(FuncFormatter(label))
    axis.set_minor_formatter(NullFormatter())


def _bytes_axis(ax) -> None:
    """Message sizes on a base-2 log axis, ticked in B/KiB/MiB/GiB."""
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(LogLocator(base=2, numticks=12))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: units.size(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    for label in ax.get_xticklabels():
        label.set_rotation(30)


def line_chart(
    series: list[Series],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    yunit: str,
    xunit: str | None = None,
    refs: list[RefLine] = (),
    notes: list[str] = (),
    bytes_axis: bool = False,
) -> Figure:
    """y against x per series (throughput vs size, busbw vs message size), with reference lines."""
    fig, (ax,) = _new_figure()
    ys = [y for s in series for y in s.y] + [r.y for r in refs]
    factor, prefix = units.si_scale(ys)
    for s in series:
        order = sorted(range(len(s.x)), key=s.x.__getitem__)
        ax.plot(
            [s.x[i] for i in order],
            [s.y[i] / factor for i in order],
            label=s.label,
            color=s.colour,
            linestyle=s.linestyle,
            marker=s.marker,
            markersize=5,
            linewidth=1.6,
        )
    for r in refs:
        ax.axhline(r.y / factor, color=r.colour, linestyle=r.linestyle, linewidth=1.3, label=r.label)
    xs = [x for s in series for x in s.x]
    if bytes_axis:
        _bytes_axis(ax)
    elif _spans_decades(xs, LOG_X_SPAN):
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis, xunit)
    elif xunit:  # '1.1 TFLOP' rather than an offset '1.1 ... 1e12'
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: units.rate(v, xunit)))
    if _spans_decades(ys, LOG_Y_SPAN):
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis)
    else:
        ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_xlabel(xlabel + (" (log scale)" if ax.get_xscale() == "log" else ""))
    ax.set_ylabel(f"{ylabel} ({prefix}{yunit})" + (", log scale" if ax.get_yscale() == "log" else ""))
    _legend(ax)
    _notes(ax, notes)
    return fig


def roofline(
    points: list[Series],
    *,
    title: str,
    compute_roofs: list[RefLine],
    bandwidth: float | None,
    bandwidth_label: str,
    notes: list[str] = (),
) -> Figure:
    """Achieved FLOP/s against arithmetic intensity (FLOP/byte), under the chip's roofs.

    A compute roof is flat at its peak; the bandwidth roof is peak bandwidth x intensity, up to the
    ridge point where it meets the highest compute roof.
    """
    fig, (ax,) = _new_figure(height=5.2)
    xs = [x for p in points for x in p.x]
    ys = [y for p in points for y in p.y] + [r.y for r in compute_roofs]
    factor, prefix = units.si_scale(ys)
    top = max((r.y for r in compute_roofs), default=None)
    ridge = top / bandwidth if top and bandwidth else None
    lo = min(xs + ([ridge] if ridge else [])) / 4
    hi = max(xs + ([ridge] if ridge else [])) * 4
    if bandwidth:
        end = ridge if ridge else hi
        ax.plot(
            [lo, end],
            [bandwidth * lo / factor, bandwidth * end / factor],
            color=BANDWIDTH_COLOUR,
            linewidth=1.6,
            label=bandwidth_label,
        )
    for r in compute_roofs:
        start = r.y / bandwidth if bandwidth else lo
        ax.plot(
            [start, hi],
            [r.y / factor] * 2,
            color=r.colour,
            linestyle=r.linestyle,
            linewidth=1.6,
            label=r.label,
        )
    if ridge:
        ax.axvline(ridge, color="#a1a1aa", linestyle=":", linewidth=1)
        ax.annotate(
            f"ridge {ridge:.3g} FLOP/B",
            (ridge, top / factor),
            textcoords="offset points",
            xytext=(4, -14),
            fontsize=8,
            color="#52525b",
        )
    for p in points:
        ax.scatter(
            [x for x in p.x],
            [y / factor for y in p.y],
            label=p.label,
            color=p.colour,
            marker=p.marker,
            s=36,
            zorder=3,
            edgecolors="white",
            linewidths=0.5,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax.xaxis)
    _plain_log_ticks(ax.yaxis)
    ax.set_xlim(lo, hi)
    # At least two decades of height, so the log axis has labelled ticks and room below the roof.
    ceiling = max(ys) * 2
    ax.set_ylim(min(min(ys) / 2, ceiling / 300) / factor, ceiling / factor)
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_xlabel("arithmetic intensity (FLOP/byte, log scale)")
    ax.set_ylabel(f"achieved ({prefix}FLOP/s, log scale)")
    _legend(ax)
    _notes(ax, notes)
    return fig


TIMELINE_PANELS = (  # metric key, axis label
    ("tflops", "throughput (TFLOP/s)"),
    ("sm_clock_mhz", "SM clock (MHz)"),
    ("temp_c", "temperature (°C)"),
    ("power_w", "power (W)"),
)


def timeline_panels(tracks: list[Track]) -> list[tuple[str, str]]:
    """The (metric, axis label) panels of TIMELINE_PANELS that some track has readings for."""
    return [(k, label) for k, label in TIMELINE_PANELS if any(_has(t.metrics.get(k)) for t in tracks)]


def timeline_chart(tracks: list[Track], *, title: str) -> Figure:
    """Burn-in: throughput and the telemetry sampled with it over time; throttled spans shaded."""
    panels = timeline_panels(tracks)
    fig, axes = _new_figure(height=1.0 + 1.9 * len(panels), rows=len(panels))
    for ax, (key, label) in zip(axes, panels, strict=True):
        for track in tracks:
            values = track.metrics.get(key) or []
            pairs = [(t, v) for t, v in zip(track.t, values, strict=False) if v is not None]
            ax.plot(
                [p[0] for p in pairs],
                [p[1] for p in pairs],
                color=track.colour,
                linewidth=1.4,
                marker=".",
                markersize=4,
                label=track.label,
            )
            for start, end in _throttled_spans(track):
                ax.axvspan(start, end, color="#fde68a", alpha=0.6, linewidth=0)
        ax.set_ylabel(label, fontsize=9)
    axes[0].set_title(title, fontsize=11, loc="left")
    axes[-1].set_xlabel("time since start (s)")
    if any(_throttled_spans(t) for t in tracks):
        axes[0].axvspan(0, 0, color="#fde68a", alpha=0.6, label="throttled (shaded)")
    _legend(axes[0])
    return fig


def _has(values) -> bool:
    return bool(values) and any(v is not None for v in values)


def _throttled_spans(track: Track) -> list[tuple[float, float]]:
    """Runs of consecutive throttled samples as (start, end) times."""
    spans, start = [], None
    for i, (t, hot) in enumerate(zip(track.t, track.throttled, strict=False)):
        if hot and start is None:
            start = t
        if start is not None and (not hot or i == len(track.t) - 1):
            spans.append((start, t))
            start = None
    return spans


VERDICT_COLOURS = {"PASS": "#3b82f6", "WARN": "#f59e0b", "FAIL": STRAGGLER_COLOUR, "SKIP": "#a1a1aa"}


def bar_chart(
    labels: list[str],
    values: list[float],
    *,
    title: str,
    ylabel: str,
    verdicts: list[str],
    flagged: dict[int, str] = None,
    refs: list[RefLine] = (),
) -> Figure:
    """One bar per device, coloured by its verdict; flagged bars (stragglers) hatched and annotated."""
    flagged = flagged or {}
    fig, (ax,) = _new_figure(height=4.2)
    colour = [VERDICT_COLOURS.get(v, "#71717a") for v in verdicts]
    bars = ax.bar(range(len(values)), values, color=colour, edgecolor="white")
    for i, note in flagged.items():
        bars[i].set_hatch("//")
        ax.annotate(
            note,
            (i, values[i]),
            textcoords="offset points",
            xytext=(0, 3),
            ha="center",
            fontsize=8,
            color=STRAGGLER_COLOUR,
            fontweight="bold",
        )
    for r in refs:
        ax.axhline(r.y, color=r.colour, linestyle=r.linestyle, linewidth=1.3, label=r.label)
    many = len(labels) > 6
    ax.set_xticks(
        range(len(values)), labels, rotation=30 if many else 0, ha="right" if many else "center", fontsize=8
    )
    ax.set_ylim(bottom=0, top=max(values + [r.y for r in refs] + [1e-9]) * 1.15)
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_ylabel(ylabel)
    for verdict in dict.fromkeys(verdicts):
        ax.bar([0], [0], color=VERDICT_COLOURS.get(verdict, "#71717a"), label=verdict)
    if flagged:
        ax.bar(
            [0], [0], color="white", edgecolor="#3f3f46", hatch="//", label="straggler (below fleet median)"
        )
    _legend(ax)
    return fig
