"""One validation check: its threshold rule, a row per device and dtype, per-device bars with the
stragglers marked, and for burn-in the timeline."""

from __future__ import annotations

import statistics

from zhisuan.bench.core import units
from zhisuan.bench.core.results import Result
from zhisuan.bench.report import fmt, plots
from zhisuan.bench.report.blocks import Block, Cell, Column, Figure, Heading, Table, Text, verdict_tone
from zhisuan.bench.report.grouping import group_by
from zhisuan.bench.report.sections.common import provenance

CHECK_ORDER = (
    "matmul", "stream-copy", "stream-scale", "stream-add", "stream-triad", "attention",
    "all_reduce", "h2d", "d2h", "integrity", "burn-in",
)  # fmt: skip
TELEMETRY = (  # field, label, unit: the readings shown, in this order
    ("sm_clock_mhz", "clock", "MHz"), ("mem_clock_mhz", "mem clock", "MHz"), ("temp_c", "temp", "°C"),
    ("power_w", "power", "W"), ("ecc_corrected", "ECC corrected", ""), ("ecc_uncorrected", "ECC uncorrected", ""),
    ("load_1m", "load", ""),
)  # fmt: skip
SIGNS = {">=": "≥", "<=": "≤"}


def verdict_of(r: Result) -> str:
    return str(r.extra.get("verdict") or "UNKNOWN").upper()


def host_of(r: Result) -> str:
    return str(r.extra.get("host") or r.env.get("host") or "unknown host")


def check_order(op: str) -> tuple[int, str]:
    return (CHECK_ORDER.index(op) if op in CHECK_ORDER else len(CHECK_ORDER), op)


def where(r: Result, with_name: bool) -> str:
    """'node7 · rank 3 · cuda:3' (with the device name when a check mixes devices); rank -1 is the fleet."""
    rank = r.extra.get("rank")
    device = f"{r.device_name} ({r.device})" if with_name else r.device
    if rank == -1:
        return f"fleet ({r.extra.get('world', '?')} ranks)"
    return host_of(r) + (f" · rank {rank}" if rank is not None else "") + f" · {device}"


def straggler_of(r: Result, stragglers: list[dict]) -> dict | None:
    """The straggler entry naming this record: its check is the op or title, alone or with the dtype."""
    title = r.extra.get("check") or r.op
    names = {r.op, title, f"{r.op} {r.dtype}", f"{title} {r.dtype}"}
    for s in stragglers:
        if (
            s.get("check") in names
            and str(s.get("host")) == host_of(r)
            and s.get("rank") == r.extra.get("rank")
        ):
            return s
    return None


def check_blocks(op: str, results: list[Result], stragglers: list[dict]) -> list[Block]:
    title = results[0].extra.get("check") or op
    blocks: list[Block] = [Heading(f"{title} ({op})", 3)]
    blocks += rule_blocks(results)
    blocks.append(check_table(results, stragglers))
    for (dtype,), members in group_by(results, lambda r: (r.dtype,)).items():
        blocks += bars(op, title, dtype, members, stragglers)
    if op == "burn-in":
        blocks += timeline(results)
    return blocks


# ---- thresholds ----------------------------------------------------------------------------------


def _sign(threshold: dict) -> str:
    """The comparison: as recorded, or read from the pass figure being stricter than the warn one."""
    if threshold.get("compare") in SIGNS:
        return SIGNS[threshold["compare"]]
    p, w = threshold.get("pass"), threshold.get("warn")
    if units.is_number(p) and units.is_number(w) and p != w:
        return "≥" if p > w else "≤"
    return ""


def _limit(threshold: dict, key: str, unit: str | None) -> str:
    """'≥ 60% of the basis' (pass/warn are fractions of a reference) or '≤ 0 repeats' (absolute)."""
    value = threshold.get(key)
    sign = _sign(threshold)
    if units.is_number(threshold.get("reference")) and units.is_number(value):
        return f"{sign} {100 * value:.4g}% of the basis".strip()
    return f"{sign} {fmt.quantity(value, unit)}".strip()


def rule_text(threshold: dict | None, unit: str | None) -> str:
    if not threshold:
        return "No threshold applies."
    text = f"PASS when {_limit(threshold, 'pass', unit)}"
    if threshold.get("warn") is not None and threshold.get("warn") != threshold.get("pass"):
        text += f", WARN when {_limit(threshold, 'warn', unit)}"
    return text + ", else FAIL."


def rule_blocks(results: list[Result]) -> list[Block]:
    """The check's rule, stated once per distinct rule, with its basis and why those numbers."""
    lines = []
    for r in results:
        threshold, unit = r.extra.get("threshold"), r.extra.get("unit")
        line = rule_text(threshold, unit)
        if threshold and threshold.get("basis") and not _basis_varies(results):
            line += f" Basis: {threshold['basis']}."
        if threshold and threshold.get("source"):
            line += f" Why: {threshold['source']}."
        if line not in lines:
            lines.append(line)
    return [Text(("Threshold: " if len(lines) == 1 else "Thresholds: ") + " / ".join(lines))]


def _basis_varies(results: list[Result]) -> bool:
    return (
        len({str((r.extra.get("threshold") or {}).get("basis")) for r in results if r.extra.get("threshold")})
        > 1
    )


def _ratio(r: Result) -> float | None:
    x = r.extra
    if units.is_number(x.get("ratio")):
        return x["ratio"]
    reference = (x.get("threshold") or {}).get("reference")
    if units.is_number(x.get("value")) and units.is_number(reference) and reference:
        return x["value"] / reference
    return None


# ---- the table -----------------------------------------------------------------------------------


def telemetry_text(telemetry: dict | None) -> str:
    """'clock 1980 MHz · temp 61 °C · power 655 W · throttle: hw_slowdown'; unread fields left out."""
    if not telemetry:
        return units.DASH
    parts = []
    for field, label, unit in TELEMETRY:
        value = telemetry.get(field)
        if units.is_number(value):
            parts.append(
                f"{label} {value:.4g}" + (f"\u00a0{unit}" if unit else "")
            )  # a number stays with its unit
    if telemetry.get("throttle"):
        parts.append(f"throttle: {fmt.plain(telemetry['throttle'])}")
    return " · ".join(parts) or units.DASH


def check_table(results: list[Result], stragglers: list[dict]) -> Table:
    with_dtype = any(r.dtype for r in results)
    with_backend = len({r.backend for r in results}) > 1  # e.g. integrity of each backend's matmul
    with_ratio = any(_ratio(r) is not None for r in results)
    with_basis = _basis_varies(results)
    with_telemetry = any(telemetry_text(r.extra.get("telemetry")) != units.DASH for r in results)
    mixed = len({r.device_name for r in results}) > 1  # one name for all: the caption says it
    columns = [Column("device")] + ([Column("dtype", nowrap=True)] if with_dtype else [])
    columns += [Column("backend", nowrap=True)] if with_backend else []
    columns += [Column("value", True)] + ([Column("% of basis", True)] if with_ratio else [])
    columns += [Column("basis")] if with_basis else []
    columns += [Column("verdict", nowrap=True), Column("reason")]
    columns += [Column("telemetry")] if with_telemetry else []
    rows = []
    for r in results:
        x = r.extra
        slow = straggler_of(r, stragglers)
        row = [Cell(where(r, mixed) + (" ⚑ straggler" if slow else ""), "fail" if slow else None)]
        row += [Cell(r.dtype or units.DASH)] if with_dtype else []
        row += [Cell(r.backend)] if with_backend else []
        if r.status == "error":
            row.append(Cell("error", "fail"))
        elif x.get("value") is None:
            row.append(Cell(units.DASH, "muted"))
        else:
            row.append(Cell(fmt.quantity(x["value"], x.get("unit"))))
        if with_ratio:
            ratio = _ratio(r)
            row.append(
                Cell(units.percent(100 * ratio) if ratio is not None and r.status != "error" else units.DASH)
            )
        row += [Cell(str((x.get("threshold") or {}).get("basis") or units.DASH))] if with_basis else []
        reason = x.get("reason") or ""
        if r.error and r.error not in reason:
            reason = f"{reason}; {r.error}" if reason else r.error
        verdict = verdict_of(r)
        row += [Cell(verdict, verdict_tone(verdict)), Cell(reason or units.DASH, None if reason else "muted")]
        row += [Cell(telemetry_text(x.get("telemetry")))] if with_telemetry else []
        rows.append(row)
    return Table(columns, rows, caption=provenance(results))


# ---- charts --------------------------------------------------------------------------------------


def bars(op: str, title: str, dtype: str, results: list[Result], stragglers: list[dict]) -> list[Block]:
    """Per-device bars for a check measured on two or more devices; stragglers hatched."""
    measured = [
        r
        for r in results
        if r.status != "error" and units.is_number(r.extra.get("value")) and r.extra.get("rank") != -1
    ]
    values = [float(r.extra["value"]) for r in measured]
    if len(measured) < 2 or min(values) == max(values):  # one device, or nothing to tell apart
        return []
    unit = measured[0].extra.get("unit") or ""
    several_backends = len({r.backend for r in measured}) > 1
    labels = [
        f"{host_of(r)}/r{r.extra.get('rank')}" + (f" {r.backend}" if several_backends else "")
        for r in measured
    ]
    marks = {}
    for i, r in enumerate(measured):
        slow = straggler_of(r, stragglers)
        if slow is not None:
            marks[i] = f"−{slow.get('deficit_pct', 0):.1f}%"
    median = statistics.median(values)
    refs = [plots.RefLine(f"fleet median {fmt.quantity(median, unit)}", median, "#52525b", "--")]
    threshold = measured[0].extra.get("threshold") or {}
    references = {(r.extra.get("threshold") or {}).get("reference") for r in measured}
    if units.is_number(threshold.get("pass")) and len(references) == 1:
        # one basis for every device (a datasheet figure): the pass line is the same for all;
        # bases measured per device (each one's own FMA probe) have no single line to draw
        reference = threshold.get("reference")
        at = threshold["pass"] * reference if units.is_number(reference) else threshold["pass"]
        refs.append(plots.RefLine(f"PASS {_sign(threshold)} {fmt.quantity(at, unit)}", at, "#15803d", ":"))
    label = f"{title} · {dtype}" if dtype else title
    ylabel = f"{title} ({unit})" if len(title) + len(unit) < 30 else unit or title
    fig = plots.bar_chart(
        labels,
        values,
        title=f"{label} per device",
        ylabel=ylabel,
        verdicts=[verdict_of(r) for r in measured],
        flagged=marks,
        refs=refs,
    )
    caption = f"{provenance(measured)}. Bars coloured by verdict; hatched: stragglers, below the fleet median by more than the margin."
    return [Figure(f"devices-{op}-{dtype}", plots.to_png(fig), f"{label} per device", caption)]


def timeline(results: list[Result]) -> list[Block]:
    runs = [r for r in results if r.extra.get("timeline")]
    if not runs:
        return [Text("No burn-in timeline was recorded.", "muted")]
    palette = plots.colours(where(r, True) for r in runs)
    tracks, reasons = [], set()
    for r in runs:
        samples = r.extra["timeline"]
        metrics = {k: [s.get(k) for s in samples] for k, _ in plots.TIMELINE_PANELS}
        throttled = [bool(s.get("throttle")) for s in samples]
        reasons.update(fmt.plain(s["throttle"]) for s in samples if s.get("throttle"))
        label = f"{host_of(r)} rank {r.extra.get('rank')}"
        tracks.append(
            plots.Track(
                label, [s.get("t", 0.0) for s in samples], metrics, throttled, palette[where(r, True)]
            )
        )
    if not any(plots.timeline_panels(tracks)):
        return [Text("The burn-in timeline holds no readings to plot.", "muted")]
    fig = plots.timeline_chart(tracks, title="burn-in: sustained throughput and telemetry over time")
    caption = f"{provenance(runs)}. Shaded: samples with a throttle reason"
    caption += f" ({', '.join(sorted(reasons))})." if reasons else " (none seen)."
    return [Figure("burn-in-timeline", plots.to_png(fig), "burn-in timeline", caption)]
