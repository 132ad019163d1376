"""The validation's two overview charts: every check against its threshold (bars), and the matmul
results on a roofline under the roofs the same run measured or the chip database has.

Both read the records as `zhisuan validate` writes them (bench/validate/__init__.py): extra's
verdict, value, unit, threshold {pass, warn, reference, compare} and ratio; a matmul result's
flops, bytes, flops_per_s, peak_flops, measured_peak_flops and peak_bandwidth; a STREAM result's
bytes_per_s (or its value in GB/s). A record missing a field is left out of the chart and the
caption says so; a chart with nothing to draw is a line of text saying why.
"""

from __future__ import annotations

import statistics
from collections import Counter

from zhisuan.bench.core import units
from zhisuan.bench.core.results import Result
from zhisuan.bench.report import fmt, plots
from zhisuan.bench.report.blocks import Block, Figure, Heading, Text
from zhisuan.bench.report.grouping import group_by
from zhisuan.bench.report.sections.checks import SEVERITY, check_order, host_of, ratio_of, sign_of, verdict_of
from zhisuan.bench.report.sections.common import has_rate, provenance
from zhisuan.bench.report.verdict_bars import VerdictBar, verdict_bars

MAX_BARS = 60  # beyond this, one bar per check and dtype: the median over devices, with its range
BYTES_PER_S = {"MB/s": 1e6, "GB/s": 1e9, "TB/s": 1e12}
MEMORY_ROOF_COLOUR = "#27272a"  # not one of the palette's, which colours the dtypes
STREAM_OPS = ("stream-copy", "stream-scale", "stream-add", "stream-triad")


# ---- every check against its threshold -----------------------------------------------------------


def verdict_chart(checks: list[Result]) -> list[Block]:
    """One chart per validate run (a merged report holds several)."""
    runs = group_by(checks, lambda r: (r.run_id,))
    blocks: list[Block] = []
    for (run_id,), members in runs.items():
        blocks += _run_chart(members, run_id if len(runs) > 1 else None)
    return blocks


def fraction_rule(r: Result) -> dict | None:
    """The threshold when its pass and warn figures are fractions of a basis ('>=' rules), else None."""
    threshold = r.extra.get("threshold")
    if not isinstance(threshold, dict) or threshold.get("compare", ">=") != ">=":
        return None
    return threshold if units.is_number(threshold.get("reference")) else None


def _fractions(r: Result) -> tuple[float | None, float | None]:
    rule = fraction_rule(r) or {}
    return tuple(rule.get(k) if units.is_number(rule.get(k)) else None for k in ("pass", "warn"))


def _ratio(r: Result) -> float | None:
    return ratio_of(r) if fraction_rule(r) and r.status != "error" else None


def _value_text(r: Result) -> str:
    """What stands at a result's bar: '57.6 GB/s (374%)', '0 differing repeats (PASS ≤ 0)', 'no value'."""
    value, unit, ratio = r.extra.get("value"), r.extra.get("unit"), _ratio(r)
    if r.status == "error" or not units.is_number(value):
        return f"no value ({r.status})" if r.status != "ok" else "no value recorded"
    if ratio is not None:
        return f"{units.percent(100 * ratio)} · {fmt.quantity(value, unit)}"
    threshold = r.extra.get("threshold") if isinstance(r.extra.get("threshold"), dict) else {}
    rule = (
        f" (PASS {sign_of(threshold)} {threshold['pass']:g})"
        if units.is_number(threshold.get("pass"))
        else ""
    )
    return fmt.quantity(value, unit) + rule


def _device_label(r: Result, hosts: int) -> str:
    rank = r.extra.get("rank")
    if rank == -1:
        return "fleet"
    return (f"{host_of(r)} " if hosts > 1 else "") + f"r{rank}"


def _order(r: Result) -> tuple:
    rank = r.extra.get("rank")
    return (*check_order(r.op), r.dtype, r.backend, host_of(r), rank if isinstance(rank, int) else 0)


def _run_chart(checks: list[Result], run_id: str | None) -> list[Block]:
    drawn = sorted((r for r in checks if verdict_of(r) != "SKIP"), key=_order)
    skipped = [r for r in checks if verdict_of(r) == "SKIP"]
    devices = {(host_of(r), r.extra.get("rank")) for r in checks if r.extra.get("rank") != -1}
    hosts = len({host for host, _ in devices})
    if len(drawn) > MAX_BARS:
        bars = [
            _summary_bar(op, dtype, members)
            for (op, dtype), members in group_by(drawn, lambda r: (r.op, r.dtype)).items()
        ]
        how = (
            "one bar per check and dtype: the median over devices, the line across it from the lowest "
            "to the highest, coloured by the worst verdict"
        )
    else:
        bars = [_bar(r, hosts if len(devices) > 1 else 0) for r in drawn]
        how = "one bar per check, dtype and backend" + (
            " and device (rN: rank N)" if len(devices) > 1 else ""
        )
        how += ", coloured by its verdict"
    where = f" · run {run_id}" if run_id else ""
    if not bars:
        why = "every check was skipped" if skipped else "no check results"
        return [Text(f"No verdict chart{where}: {why}.", "muted")]
    caption = (
        f"{provenance(checks)}. Each check's value as a percentage of its threshold basis (the figure it "
        f"was judged against, given in its section below), {how}. Marks on a bar: "
        "its PASS fraction (solid) and WARN fraction (dashed). Results judged without a fraction (counts "
        "such as integrity's differing repeats) or with no value are a square with the value in words; so is a bar too short to see."
    )
    if skipped:
        names = Counter(f"{r.op} {r.dtype}".strip() for r in skipped)
        listed = ", ".join(f"{name} ×{n}" if n > 1 else name for name, n in names.items())
        caption += f" Not drawn: {listed} (SKIP: nothing measured)."
    if any(r.extra.get("sizes") == "test" for r in checks):
        caption += " TEST SIZES: tiny problems, not a real measurement."
    fig = verdict_bars(bars, title=f"checks against their thresholds{where}")
    name = f"verdicts-{run_id}" if run_id else "verdicts"
    alt = "bar chart: each check's value as a percentage of its threshold basis, coloured by verdict"
    return [Figure(name, plots.to_png(fig), alt, caption)]


def _bar(r: Result, hosts: int) -> VerdictBar:
    parts = [r.op, r.dtype, r.backend] + ([_device_label(r, hosts)] if hosts else [])
    pass_at, warn_at = _fractions(r)
    return VerdictBar(
        " · ".join(p for p in parts if p), verdict_of(r), _ratio(r), _value_text(r), pass_at, warn_at
    )


def _summary_bar(op: str, dtype: str, members: list[Result]) -> VerdictBar:
    counts = Counter(verdict_of(r) for r in members)
    worst = max(counts, key=lambda v: SEVERITY.get(v, 4))
    ratios = [x for x in (_ratio(r) for r in members) if x is not None]
    judged = next((r for r in members if _ratio(r) is not None), members[0])
    pass_at, warn_at = _fractions(judged)
    tally = ", ".join(f"{counts[v]} {v}" for v in sorted(counts, key=lambda v: -SEVERITY.get(v, 4)))
    text = (f"median {units.percent(100 * statistics.median(ratios))} · " if ratios else "") + tally
    spread = (min(ratios), max(ratios)) if len(ratios) > 1 else (None, None)
    label = " · ".join(p for p in (op, dtype, f"{len(members)} results") if p)
    ratio = statistics.median(ratios) if ratios else None
    return VerdictBar(label, worst, ratio, text, pass_at, warn_at, *spread)


# ---- the matmul results on a roofline ------------------------------------------------------------


def roofline(checks: list[Result]) -> list[Block]:
    """A roofline per run and device model, with the STREAM bandwidth measured by that same run."""
    matmuls = [r for r in checks if r.op == "matmul"]
    if not matmuls:
        return []
    several = len({(r.run_id, r.device_name) for r in matmuls}) > 1
    blocks: list[Block] = [Heading("Matmul on the roofline", 4)]
    for (run_id, device_name), members in group_by(matmuls, lambda r: (r.run_id, r.device_name)).items():
        streams = [
            r for r in checks if r.op in STREAM_OPS and r.run_id == run_id and r.device_name == device_name
        ]
        blocks += _roofline(members, streams, f" · run {run_id}" if several else "")
    return blocks


def _plottable(r: Result) -> bool:
    return has_rate(r) and bool(r.flops) and bool(r.bytes) and bool(r.flops_per_s)


def _stream_rate(r: Result) -> float | None:
    if r.status == "error" or verdict_of(r) == "SKIP":
        return None
    if has_rate(r) and r.bytes_per_s:
        return r.bytes_per_s
    value, scale = r.extra.get("value"), BYTES_PER_S.get(r.extra.get("unit"))
    return value * scale if units.is_number(value) and scale else None


def memory_roofs(matmuls: list[Result], streams: list[Result]) -> tuple[list[plots.RefLine], list[str]]:
    """The measured STREAM roof (best kernel per device, median over devices) and the datasheet one."""
    roofs, sources = [], []
    best: dict[tuple, tuple[float, Result]] = {}
    for r in streams:
        rate = _stream_rate(r)
        device = (host_of(r), r.extra.get("rank"))
        if rate is not None and (device not in best or rate > best[device][0]):
            best[device] = (rate, r)
    if best:
        rates = [rate for rate, _ in best.values()]
        kernels = sorted({r.op.removeprefix("stream-") for _, r in best.values()})
        over = f", median of {len(best)} devices" if len(best) > 1 else ""
        in_cache = not any(r.extra.get("past_cache") for _, r in best.values())
        label = f"measured STREAM {'/'.join(kernels)} {units.rate(statistics.median(rates), 'B/s')}{over}"
        roofs.append(
            plots.RefLine(
                label + ("; arrays in cache" if in_cache else ""),
                statistics.median(rates),
                MEMORY_ROOF_COLOUR,
                "-",
            )
        )
        sources.append(
            "memory roof (solid black): the fastest STREAM kernel of this run"
            + (
                ", its arrays fitting in cache (test sizes): a cache bandwidth, not the memory's"
                if in_cache
                else ""
            )
        )
    datasheet = next(
        (r.peak_bandwidth for r in matmuls if units.is_number(r.peak_bandwidth) and r.peak_bandwidth), None
    )
    if datasheet:
        roofs.append(
            plots.RefLine(
                f"datasheet bandwidth {units.rate(datasheet, 'B/s')}", datasheet, MEMORY_ROOF_COLOUR, "--"
            )
        )
        sources.append(
            "datasheet memory roof (dashed black): the chip database's bandwidth, as recorded with the results"
        )
    return roofs, sources


def compute_roofs(matmuls: list[Result], colours: dict[str, str]) -> tuple[list[plots.RefLine], list[str]]:
    """Per dtype: the datasheet (or derived) peak, and the peak measured on the chip where recorded."""
    roofs, named = [], []
    for (dtype,), members in group_by(matmuls, lambda r: (r.dtype,)).items():
        peak = next((r for r in members if units.is_number(r.peak_flops) and r.peak_flops), None)
        if peak is not None:
            status = peak.peak_status or "datasheet"
            roofs.append(
                plots.RefLine(
                    f"{dtype} {status} peak {units.rate(peak.peak_flops, 'FLOP/s')}",
                    peak.peak_flops,
                    colours[dtype],
                    "--",
                )
            )
            named.append(f"{dtype} {status} peak (dashed)")
        measured = [
            r.measured_peak_flops
            for r in members
            if units.is_number(r.measured_peak_flops) and r.measured_peak_flops
        ]
        if measured:
            over = f", median of {len(measured)} devices" if len(measured) > 1 else ""
            value = statistics.median(measured)
            roofs.append(
                plots.RefLine(
                    f"{dtype} measured peak {units.rate(value, 'FLOP/s')}{over}", value, colours[dtype], ":"
                )
            )
            named.append(f"{dtype} peak measured on the chip by the FMA probe (dotted)")
    return roofs, named


def _roofline(matmuls: list[Result], streams: list[Result], where: str) -> list[Block]:
    plotted = [r for r in matmuls if _plottable(r)]
    left_out = len(matmuls) - len(plotted)
    missing = f"{left_out} of {len(matmuls)} matmul results carry no FLOP count, byte count or achieved rate (a skip, a failure or an older record)"
    if not plotted:
        return [Text(f"No roofline{where}: {missing}.", "muted")]
    first = plotted[0]
    colours = plots.colours(r.dtype for r in plotted)
    points = [
        plots.Series(
            f"matmul {dtype}" + (f" ({len(members)} devices)" if len(members) > 1 else ""),
            [r.flops / r.bytes for r in members],
            [r.flops_per_s for r in members],
            colour=colours[dtype],
        )
        for (dtype,), members in group_by(plotted, lambda r: (r.dtype,)).items()
    ]
    compute, compute_named = compute_roofs(plotted, colours)
    memory, memory_named = memory_roofs(plotted, streams)
    notes = [] if compute else [f"no compute roof: no peak FLOP/s recorded for {first.device_name}"]
    notes += (
        []
        if memory
        else [f"no memory roof: no STREAM result in this run, no datasheet bandwidth for {first.device_name}"]
    )
    fig = plots.roofline(
        points,
        title=f"matmul roofline · {first.device_name}{where}",
        compute_roofs=compute,
        bandwidths=memory,
        notes=notes,
    )
    sentences = [
        provenance(plotted),
        "Each point is a matmul result: its FLOPs over the bytes it moves at least (inputs read once, "
        "output written once) against its achieved rate",
    ]
    sentences += ["Roofs: " + "; ".join(compute_named + memory_named)] if compute or memory else []
    sentences += [f"Not drawn: {note}" for note in notes]
    sentences += [f"Not plotted: {missing}"] if left_out else []
    if any(r.extra.get("sizes") == "test" for r in plotted):
        sentences.append("TEST SIZES: tiny problems, not a real measurement")
    caption = ". ".join(sentences) + "."
    return [
        Figure(
            f"roofline-validate-{first.device_name}{where}",
            plots.to_png(fig),
            "matmul roofline",
            caption.strip(),
        )
    ]
