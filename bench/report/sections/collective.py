"""Collective results (`zhisuan collective`): bus bandwidth against message size, nccl-tests' table."""

from __future__ import annotations

from zhisuan.bench.core import units
from zhisuan.bench.core.results import Result
from zhisuan.bench.report import plots
from zhisuan.bench.report.blocks import Block, Cell, Column, Figure, Heading, Table, Text
from zhisuan.bench.report.grouping import group_by
from zhisuan.bench.report.sections.common import provenance, status_cell

INTRO = (
    "Bandwidths as nccl-tests defines them: algbw = message size / time; busbw = algbw × the "
    "collective's bus factor (all_reduce 2(n−1)/n; all_gather, reduce_scatter, all_to_all (n−1)/n; "
    "broadcast, reduce, send/recv 1), comparable with the link's bandwidth. Sizes in binary units "
    "(1 KiB = 1024 B), bandwidths in GB/s (10⁹ B/s). Data were checked with exactly representable "
    "inputs: a result with wrong elements shows the count and no bandwidth."
)
GB = 1e9


def _placement(r: Result) -> str:
    return "in-place" if r.extra.get("in_place") else "out-of-place"


def _good(r: Result) -> bool:
    return r.timed and units.is_number(r.extra.get("busbw"))  # unchecked (-c 0) rows: timed, marked


def collective_section(results: list[Result]) -> list[Block]:
    backend_colours = plots.colours(r.backend for r in results)
    blocks: list[Block] = [Heading("Collectives"), Text(INTRO)]
    key = lambda r: (r.op, r.dtype, r.shape.get("ranks"), r.device_name, r.extra.get("op"))  # noqa: E731
    for (op, dtype, ranks, device_name, reduce_op), group in group_by(results, key).items():
        what = f"{op} · {dtype}" + (f" · {reduce_op}" if reduce_op else "") + f" · {ranks} ranks"
        blocks.append(Heading(f"{what} · {device_name}", 3))
        blocks += _chart(what, group, backend_colours)
        blocks.append(_average_table(group))
        blocks.append(_size_table(group))
    return blocks


def _chart(what: str, results: list[Result], backend_colours: dict[str, str]) -> list[Block]:
    good = [r for r in results if _good(r)]
    if not good:
        return []
    series = [
        plots.Series(
            f"{backend} {placement}",
            [r.shape.get("bytes", r.bytes) for r in members],
            [r.extra["busbw"] for r in members],
            colour=backend_colours[backend],
            linestyle="--" if placement == "in-place" else "-",
            marker="s" if placement == "in-place" else "o",
        )
        for (backend, placement), members in group_by(good, lambda r: (r.backend, _placement(r))).items()
    ]
    notes = []
    if len(good) < len(results):
        notes.append(f"not plotted: {len(results) - len(good)} failed (see the table)")
    if all(r.extra["busbw"] == 0 for r in good):
        notes.append("busbw is 0: with one rank the bus factor is 0 (nothing crosses a link)")
    fig = plots.line_chart(
        series,
        title=f"{what} · bus bandwidth by message size",
        xlabel="message size",
        ylabel="busbw",
        yunit="B/s",
        notes=notes,
        bytes_axis=True,
    )
    caption = f"{provenance(results)}. Solid: out-of-place; dashed: in-place."
    return [Figure(f"busbw-{what}", plots.to_png(fig), f"{what} bus bandwidth against message size", caption)]


def _average_table(results: list[Result]) -> Table:
    """nccl-tests' closing line, per backend: the mean busbw over every size and placement."""
    rows = []
    for (backend,), members in group_by(results, lambda r: (r.backend,)).items():
        good = [r for r in members if _good(r)]
        wrong = sum(int(r.extra.get("wrong") or r.check.get("wrong") or 0) for r in members)
        failed = len(members) - len(good)
        if failed:
            average = Cell(f"not averaged: {failed} of {len(members)} failed", "fail")
        else:
            average = Cell(f"{sum(r.extra['busbw'] for r in good) / len(good) / GB:.4g} GB/s")
        rows.append(
            [Cell(backend), Cell(str(len(members))), average, Cell(str(wrong), "fail" if wrong else "ok")]
        )
    columns = [
        Column("backend"),
        Column("results", True),
        Column("average busbw", True),
        Column("#wrong", True),
    ]
    return Table(columns, rows, caption="Average bus bandwidth over all sizes, out-of-place and in-place.")


def _size_table(results: list[Result]) -> Table:
    columns = [
        Column("size", True),
        Column("count", True),
        Column("backend", nowrap=True),
        Column("placement", nowrap=True),
        Column("time", True),
        Column("algbw", True),
        Column("busbw", True),
        Column("p50 / p95 / max", True),
        Column("slowest rank", True),
        Column("#wrong", True),
        Column("status"),
    ]
    rows = []
    # nccl-tests' order: by size, out-of-place before in-place
    ordered = sorted(
        results, key=lambda r: (r.shape.get("bytes", 0), r.backend, bool(r.extra.get("in_place")))
    )
    for r in ordered:
        x = r.extra
        wrong = x.get("wrong", r.check.get("wrong"))
        if _good(r):
            time_s = x.get("time_s", r.median_s)
            spread = " / ".join(units.duration(x.get(k)) for k in ("p50_s", "p95_s", "max_s"))
            numbers = [Cell(units.duration(time_s)), Cell(_gbps(x.get("algbw"))), Cell(_gbps(x["busbw"]))]
            numbers.append(Cell(spread))
        else:  # no bandwidth for data that were wrong or a run that failed
            dash = Cell(units.DASH, "muted")
            numbers = [dash, dash, Cell(r.status, "fail"), dash]
        rows.append(
            [
                Cell(units.size(r.shape.get("bytes"))),
                Cell(str(r.shape.get("count", units.DASH))),
                Cell(r.backend),
            ]
            + [Cell(_placement(r)), *numbers, Cell(str(x.get("slowest_rank", units.DASH)))]
            + [
                Cell(str(wrong) if wrong is not None else units.DASH, "fail" if wrong else None),
                status_cell(r),
            ]
        )
    return Table(columns, rows, caption=f"{provenance(results)}. Times are per call (µs = 10⁻⁶ s).")


def _gbps(value) -> str:
    return f"{value / GB:.4g} GB/s" if units.is_number(value) else units.DASH
