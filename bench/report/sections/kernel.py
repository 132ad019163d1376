"""Kernel results (`zhisuan run`): throughput against problem size per backend, the roofline, tables."""

from __future__ import annotations

from zhisuan.bench.core import units
from zhisuan.bench.core.results import Result, short_shape
from zhisuan.bench.report import plots
from zhisuan.bench.report.blocks import Block, Cell, Column, Figure, Heading, Table, Text
from zhisuan.bench.report.grouping import group_by
from zhisuan.bench.report.sections.common import failed_cell, has_rate, provenance, status_cell

NOISY_CV = 0.10  # coefficient of variation beyond which a timing is flagged as noisy
INTRO = (
    "Each kernel was checked against a float64 reference on the same inputs before it was timed; a "
    "result that failed the check or crashed is shown as such and carries no rate. Rates come from "
    "the median of the timed samples; percentages are of the datasheet (or derived) peak and of the "
    "peak measured on this very chip."
)


def kernel_section(results: list[Result]) -> list[Block]:
    backend_colours = plots.colours(r.backend for r in results)
    blocks: list[Block] = [Heading("Kernels"), Text(INTRO)]
    by_target = group_by(results, lambda r: (r.device_name, r.device, r.dtype))
    for (device_name, device, dtype), group in by_target.items():
        blocks.append(Heading(f"{device_name} ({device}) · {dtype or 'dtype not recorded'}", 3))
        for (op,), members in group_by(group, lambda r: (r.op,)).items():
            blocks += op_blocks(op, members, backend_colours)
        blocks += roofline_blocks(group, backend_colours)
    return blocks


def _uses_flops(results: list[Result]) -> bool:
    """Kernels counted in FLOPs are plotted in FLOP/s; byte-only kernels in bytes/s."""
    return any(r.flops for r in results)


def _not_plotted(results: list[Result]) -> list[str]:
    skipped = [r for r in results if not has_rate(r)]
    if not skipped:
        return []
    counts: dict[str, int] = {}
    for r in skipped:
        reason = r.status if not r.timed else "interpreted (no rate)" if r.interpreted else "no rate recorded"
        counts[reason] = counts.get(reason, 0) + 1
    listed = ", ".join(f"{n} {reason}" for reason, n in counts.items())
    return [f"not plotted: {listed} (see the table)"]


def op_blocks(op: str, results: list[Result], backend_colours: dict[str, str]) -> list[Block]:
    flops = _uses_flops(results)
    rated = [r for r in results if has_rate(r) and _point(r, flops) is not None]
    blocks: list[Block] = [Heading(op, 4)]
    if rated:
        fig = plots.line_chart(
            [
                plots.Series(
                    backend,
                    [_point(r, flops)[0] for r in members],
                    [_point(r, flops)[1] for r in members],
                    colour=backend_colours[backend],
                )
                for (backend,), members in group_by(rated, lambda r: (r.backend,)).items()
            ],
            title=f"{op} throughput by size · {results[0].dtype} · {results[0].device_name}",
            xlabel="work per call (FLOP)" if flops else "bytes moved per call (B)",
            xunit="FLOP" if flops else "B",
            ylabel="achieved",
            yunit="FLOP/s" if flops else "B/s",
            refs=_peak_lines(results, flops),
            notes=_not_plotted(results),
        )
        blocks.append(
            Figure(
                name=f"throughput-{op}-{results[0].dtype}-{results[0].device_name}",
                png=plots.to_png(fig),
                alt=f"{op} achieved throughput against problem size, one line per backend, with the peak",
                caption=f"{provenance(results)}. Each point is the median of its timed samples.",
            )
        )
    blocks.append(results_table(results, flops))
    return blocks


def _point(r: Result, flops: bool) -> tuple[float, float] | None:
    """(work per call, achieved rate) of a result, in FLOPs or bytes; None where either is missing."""
    work, rate = (r.flops, r.flops_per_s) if flops else (r.bytes, r.bytes_per_s)
    return (work, rate) if work and rate else None


def _peak_lines(results: list[Result], flops: bool) -> list[plots.RefLine]:
    lines = []
    if flops:
        peak = next((r for r in results if r.peak_flops), None)
        if peak is not None:
            status = peak.peak_status or "datasheet"
            lines.append(
                plots.RefLine(f"{status} peak {units.rate(peak.peak_flops, 'FLOP/s')}", peak.peak_flops)
            )
        measured = max((r.measured_peak_flops for r in results if r.measured_peak_flops), default=None)
        if measured:
            lines.append(
                plots.RefLine(
                    f"measured peak {units.rate(measured, 'FLOP/s')}", measured, plots.MEASURED_COLOUR, ":"
                )
            )
    else:
        bandwidth = next((r.peak_bandwidth for r in results if r.peak_bandwidth), None)
        if bandwidth:
            lines.append(plots.RefLine(f"datasheet bandwidth {units.rate(bandwidth, 'B/s')}", bandwidth))
    return lines


def _peak_column(results: list[Result], flops: bool) -> str:
    """'% of peak (derived / measured)': the datasheet-or-derived peak first, then the measured one."""
    if not flops:
        return "% of peak bandwidth"
    statuses = {r.peak_status for r in results if r.pct_peak is not None}
    status = statuses.pop() if len(statuses) == 1 else None
    first = status if status and status != "datasheet" else "datasheet"
    return f"% of peak ({first} / measured)"


def _check_text(r: Result) -> Cell:
    if not units.is_number(r.check.get("max_abs_err")) or not units.is_number(r.check.get("tolerance")):
        return Cell(units.DASH, "muted")
    text = f"{r.check['max_abs_err']:.2g} / {r.check['tolerance']:.2g}"
    return Cell(text, None if r.check.get("passed") else "fail")


def _pct_cell(r: Result, flops: bool, mixed_statuses: bool) -> Cell:
    if not flops:
        return Cell(units.percent(r.pct_peak_bandwidth))
    first = units.percent(r.pct_peak)
    if mixed_statuses and r.pct_peak is not None and r.peak_status not in (None, "datasheet"):
        first += f" ({r.peak_status})"
    return Cell(f"{first} / {units.percent(r.pct_measured_peak)}")


def results_table(results: list[Result], flops: bool) -> Table:
    several_runs = len({r.run_id for r in results}) > 1
    peak_column = _peak_column(results, flops)
    mixed = len({r.peak_status for r in results if r.pct_peak is not None}) > 1
    columns = [
        Column("backend", nowrap=True),
        Column("shape", nowrap=True),
        Column("work / call", numeric=True),
        Column("median time", numeric=True),
        Column("CV", numeric=True),
        Column("achieved", numeric=True),
        Column(peak_column, numeric=True),
        Column("max error / tolerance", numeric=True),
        Column("status"),
    ] + ([Column("run", nowrap=True)] if several_runs else [])
    rows = []
    for r in sorted(results, key=lambda r: ((r.flops or r.bytes or 0), r.backend)):
        work = units.rate(r.flops, "FLOP") if flops else units.size(r.bytes)
        if has_rate(r):
            achieved = units.rate(r.flops_per_s, "FLOP/s") if flops else units.rate(r.bytes_per_s, "B/s")
            cv = (
                Cell(units.percent(100 * r.cv), "warn" if r.cv > NOISY_CV else None)
                if r.cv is not None
                else Cell(units.DASH)
            )
            numbers = [Cell(units.duration(r.median_s)), cv, Cell(achieved), _pct_cell(r, flops, mixed)]
        else:  # no time, no rate: the achieved column says why
            dash = Cell(units.DASH, "muted")
            numbers = [dash, dash, failed_cell(r), dash]
        row = [Cell(r.backend), Cell(short_shape(r.op, r.shape)), Cell(work), *numbers]
        row += [_check_text(r), status_cell(r)]
        rows.append(row + ([Cell(r.run_id)] if several_runs else []))
    caption = provenance(results)
    if any(has_rate(r) and r.cv is not None and r.cv > NOISY_CV for r in results):
        caption += (
            f". CV (spread of the samples) above {100 * NOISY_CV:.0f}% is marked: a noisy timing, to repeat."
        )
    return Table(columns, rows, caption=caption)


def roofline_blocks(results: list[Result], backend_colours: dict[str, str]) -> list[Block]:
    rated = [r for r in results if has_rate(r) and r.flops and r.bytes and r.flops_per_s]
    if not rated:
        return []
    first = rated[0]
    op_markers = plots.markers(r.op for r in rated)
    points = [
        plots.Series(
            f"{op} · {backend}",
            [r.flops / r.bytes for r in members],
            [r.flops_per_s for r in members],
            colour=backend_colours[backend],
            marker=op_markers[op],
        )
        for (op, backend), members in group_by(rated, lambda r: (r.op, r.backend)).items()
    ]
    bandwidth = next((r.peak_bandwidth for r in rated if r.peak_bandwidth), None)
    roofs = _peak_lines(rated, flops=True)
    notes = []
    if not bandwidth:
        notes.append(f"memory-bandwidth roof unknown: no datasheet bandwidth for {first.device_name}")
    if not roofs:
        notes.append(f"compute roof unknown: no peak figure for {first.device_name} at {first.dtype}")
    fig = plots.roofline(
        points,
        title=f"roofline · {first.dtype} · {first.device_name}",
        compute_roofs=roofs,
        bandwidth=bandwidth,
        bandwidth_label=f"bandwidth roof {units.rate(bandwidth, 'B/s')}" if bandwidth else "",
        notes=notes,
    )
    caption = (
        f"{provenance(rated)}. Arithmetic intensity = FLOPs / minimum bytes moved per call (inputs read "
        "once, output written once), so a point's distance below the roof is what the kernel leaves on the table."
    )
    if not bandwidth:
        caption += (
            " The bandwidth roof is not drawn: the peak database has no memory bandwidth for this chip "
            "(it has none for CPUs)."
        )
    return [
        Heading(f"Roofline · {first.dtype}", 4),
        Figure(f"roofline-{first.dtype}-{first.device_name}", plots.to_png(fig), "roofline chart", caption),
    ]
