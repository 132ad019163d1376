"""Validation results (`zhisuan validate`): the verdict first, then the fleet, then every check.

The record contract is the validate command's (bench/validate/__init__.py): one record per check,
dtype and rank (op = the check id; extra = check title, verdict, value, unit, threshold, ratio,
reason, host, rank (-1: fleet-wide), sizes, telemetry, and a timeline for burn-in), and one
op="summary" record: overall verdict, counts, level, duration, devices, stragglers, and the
cluster's achieved FLOP/s beside its nameplate.
"""

from __future__ import annotations

from collections import Counter

from zhisuan.bench.core import units
from zhisuan.bench.core.results import Result
from zhisuan.bench.report import fmt
from zhisuan.bench.report.blocks import (
    Banner,
    Block,
    Cell,
    Column,
    Heading,
    Metric,
    Metrics,
    Table,
    Text,
    verdict_tone,
)
from zhisuan.bench.report.grouping import group_by
from zhisuan.bench.report.sections.checks import TELEMETRY, check_blocks, check_order, host_of, verdict_of
from zhisuan.bench.report.sections.common import provenance

VERDICTS = ("PASS", "WARN", "FAIL", "SKIP")
SEVERITY = {"FAIL": 3, "WARN": 2, "PASS": 1, "SKIP": 0}


def validate_section(results: list[Result]) -> list[Block]:
    """The banner first (the document puts it at the top of the page), then the validation.

    Results of several validate runs (a merged report) get a verdict per run in the banner, the
    worst of them on top, and each run's cluster figures, stragglers and devices under its run id:
    the headline is never one run's while the tables show all of them.
    """
    summaries = [r for r in results if r.op == "summary"]
    checks = [r for r in results if r.op != "summary"]
    stragglers = [s for summary in summaries for s in _stragglers(summary)]
    blocks: list[Block] = [banner(summaries, checks), Heading("Validation")]
    several = len(summaries) > 1
    for summary in summaries:
        blocks += [Heading(f"Run {summary.run_id or '(no run id)'}", 3)] if several else []
        blocks += cluster_blocks(summary)
    blocks += [Heading("Checks", 3), overview_table(checks)]
    for summary in summaries:
        blocks += (
            [Heading(f"Stragglers and devices of run {summary.run_id or '(no run id)'}", 3)]
            if several
            else []
        )
        blocks += straggler_blocks(_stragglers(summary))
        blocks += device_blocks(summary)
    blocks += unreadable_telemetry(checks)
    for op in sorted({r.op for r in checks}, key=check_order):
        blocks += check_blocks(op, [r for r in checks if r.op == op], stragglers)
    return blocks


def _stragglers(summary: Result) -> list[dict]:
    return [s for s in summary.extra.get("stragglers") or [] if isinstance(s, dict)]


def run_verdict(summary: Result | None, checks: list[Result]) -> str:
    """A run's verdict: its summary's, or the worst of its checks where it has no summary."""
    if summary is not None:
        return str(summary.extra.get("verdict") or "UNKNOWN").upper()
    known = [v for v in (verdict_of(r) for r in checks) if v in SEVERITY]
    return max(known, key=SEVERITY.get) if known else "UNKNOWN"


def banner(summaries: list[Result], checks: list[Result]) -> Banner:
    """The verdict and counts of every run in these results; one line per run when there are several."""
    runs = list(dict.fromkeys([r.run_id for r in summaries] + [r.run_id for r in checks]))
    by_run = {
        run: ([s for s in summaries if s.run_id == run], [r for r in checks if r.run_id == run])
        for run in runs
    }
    verdicts = {run: run_verdict(s[-1] if s else None, c) for run, (s, c) in by_run.items()}
    if len(summaries) == 1 and len(runs) == 1:
        recorded = summaries[0].extra.get("counts") or {}
        counts = Counter({str(v): n for v, n in recorded.items() if isinstance(n, int)}) if recorded else None
    else:
        counts = None
    counts = counts or Counter(verdict_of(r) for r in checks)  # what the tables below count
    ordered = {v: counts.get(v, 0) for v in VERDICTS}
    ordered.update({v: n for v, n in counts.items() if v not in VERDICTS})
    verdict = max(verdicts.values(), key=lambda v: SEVERITY.get(v, -1)) if verdicts else "UNKNOWN"
    details = []
    if len(runs) > 1:
        details.append(f"{len(runs)} runs merged; the verdict is the worst of theirs:")
        for run, (_, run_checks) in by_run.items():
            fails = sum(verdict_of(r) == "FAIL" for r in run_checks)
            details.append(
                f"run {run or '(no run id)'}: {verdicts[run]} ({len(run_checks)} check results, {fails} FAIL)"
            )
    for summary in summaries:
        x = summary.extra
        duration = units.duration(x["duration_s"]) if units.is_number(x.get("duration_s")) else units.DASH
        prefix = f"run {summary.run_id}: " if len(runs) > 1 else ""
        details.append(f"{prefix}level {x.get('level') or units.DASH}; ran for {duration}")
        if x.get("interrupted"):
            details.append(f"{prefix}interrupted before the end (Ctrl-C): this report covers what ran")
    if not summaries:
        details.append("no summary record in these results: the verdict is the worst of the checks")
    per_device = {
        (r.run_id, host_of(r), r.extra.get("rank"), r.device): r
        for r in checks
        if r.extra.get("rank", 0) != -1
    }
    names = Counter(r.device_name for r in per_device.values())
    hosts = list(dict.fromkeys(host_of(r) for r in checks))
    fleet = ", ".join(f"{n} × {name}" for name, n in names.items()) or "no device"
    details.append(f"{fleet} on {len(hosts)} host{'s' if len(hosts) != 1 else ''} ({', '.join(hosts[:8])})")
    scope = checks + summaries
    details.append(provenance(scope).split("; ", 1)[1])  # the run ids and dates
    if any(r.extra.get("sizes") == "test" for r in scope):
        details.append(
            "TEST SIZES (ZHISUAN_VALIDATE_TEST_SIZES): tiny problems for the test suite, not a real measurement"
        )
    devices = sum(names.values())
    headline = f"{len(checks)} check results on {devices} device{'s' if devices != 1 else ''}"
    headline += f" from {len(runs)} runs" if len(runs) > 1 else ""
    return Banner(verdict, headline, ordered, details)


def _flops(pflops) -> str:
    """A cluster figure in the unit that reads best: PFLOP/s for a center, GFLOP/s for one CPU."""
    return units.rate(pflops * 1e15, "FLOP/s")


def cluster_blocks(summary: Result) -> list[Block]:
    cluster = summary.extra.get("cluster") or {}
    if not cluster:
        return []
    achieved, nameplate = cluster.get("achieved_pflops"), cluster.get("nameplate_pflops")
    ranks, dtype = cluster.get("ranks"), cluster.get("dtype")
    measured = cluster.get("measured_ranks", ranks)
    what = f"{dtype} matmul" if dtype else "matmul"
    over = f", {measured} of {ranks} ranks measured" if ranks is not None else ""
    items = [
        Metric(
            f"cluster achieved ({what})",
            _flops(achieved) if units.is_number(achieved) else "not measured",
            f"sum of the measured matmul throughput of every device{over}",
        )
    ]
    if units.is_number(nameplate):
        statuses = cluster.get("nameplate_status") or []
        status = f" ({', '.join(statuses)})" if statuses and statuses != ["datasheet"] else ""
        items.append(Metric("nameplate", _flops(nameplate), f"sum of the datasheet peaks{status}"))
        pct = cluster.get("pct_of_nameplate")
        if not units.is_number(pct) and units.is_number(achieved) and nameplate > 0:
            pct = 100 * achieved / nameplate
        if units.is_number(pct):
            items.append(Metric("achieved / nameplate", units.percent(pct), "the figure a center quotes"))
    else:
        why = cluster.get("nameplate_reason") or cluster.get("reason") or "no reason recorded"
        items.append(Metric("nameplate", "unknown", why))
    return [Heading("Cluster throughput", 3), Metrics(items)]


def overview_table(checks: list[Result]) -> Table:
    """One line per check: how many devices (and dtypes) passed, warned, failed or were skipped."""
    rows = []
    by_op = group_by(checks, lambda r: (r.op,))
    for (op,) in sorted(by_op, key=lambda k: check_order(k[0])):
        members = by_op[(op,)]
        counts = Counter(verdict_of(r) for r in members)
        worst = max(counts, key=lambda v: SEVERITY.get(v, 4))
        title = members[0].extra.get("check") or op
        row = [Cell(title), Cell(worst, verdict_tone(worst))]
        row += [Cell(str(counts.get(v, 0)), verdict_tone(v) if counts.get(v) else "muted") for v in VERDICTS]
        rows.append(row)
    columns = [Column("check"), Column("worst verdict", nowrap=True)] + [
        Column(v, numeric=True) for v in VERDICTS
    ]
    return Table(
        columns, rows, caption="Per check: the number of results (devices × dtypes) with each verdict."
    )


def straggler_blocks(stragglers: list[dict]) -> list[Block]:
    if not stragglers:
        return [Text("No stragglers: every device is within the margin of its fleet median.", "ok")]
    rows = [
        [
            Cell(str(s.get("check"))),
            Cell(str(s.get("host"))),
            Cell(str(s.get("rank"))),
            Cell(fmt.quantity(s.get("value"), s.get("unit"))),
            Cell(fmt.quantity(s.get("median"), s.get("unit"))),
            Cell(f"−{units.percent(s.get('deficit_pct'))}", "fail"),
        ]
        for s in stragglers
    ]
    columns = [Column("check"), Column("host"), Column("rank", True), Column("value", True)]
    columns += [Column("fleet median", True), Column("below median", True)]
    caption = "Devices below the fleet median of their check by more than the margin."
    return [Heading("Stragglers", 3), Table(columns, rows, caption)]


def device_blocks(summary: Result) -> list[Block]:
    devices = summary.extra.get("devices") or []
    if not devices:
        return []
    if not all(isinstance(d, dict) for d in devices):
        return [Heading("Devices", 3), Text(", ".join(fmt.plain(d) for d in devices))]
    keys = list(dict.fromkeys(k for d in devices for k in d))
    rows = []
    for d in devices:
        verdict = str(d.get("verdict", "")).upper()
        rows.append(
            [
                Cell(verdict, verdict_tone(verdict)) if k == "verdict" else Cell(fmt.plain(d.get(k)))
                for k in keys
            ]
        )
    return [Heading("Devices", 3), Table([Column(k.replace("_", " ")) for k in keys], rows)]


def unreadable_telemetry(checks: list[Result]) -> list[Block]:
    """What the telemetry could not read, and why, said once rather than as blanks in every row."""
    seen: dict[tuple[str, str], set[str]] = {}
    for r in checks:
        for field, why in ((r.extra.get("telemetry") or {}).get("unreadable") or {}).items():
            seen.setdefault((field, str(why)), set()).add(f"{host_of(r)} rank {r.extra.get('rank')}")
    if not seen:
        return []
    labels = {field: f"{label} ({unit})" if unit else label for field, label, unit in TELEMETRY}
    rows = [
        [Cell(labels.get(field, field.replace("_", " "))), Cell(why), Cell(f"{len(where)}")]
        for (field, why), where in seen.items()
    ]
    columns = [Column("reading", nowrap=True), Column("why it is not readable"), Column("devices", True)]
    return [
        Heading("Telemetry not readable", 3),
        Table(columns, rows, "Readings missing from the tables below."),
    ]
