"""The table `zhisuan run` prints: one row per result, rates against the peaks, the check beside them."""

from __future__ import annotations

from rich.table import Table

from zhisuan.bench.core import units
from zhisuan.bench.core.console import safe
from zhisuan.bench.core.results import Result, short_shape


def pct(value: float | None, status: str | None = None) -> str:
    if value is None:
        return units.DASH
    mark = "" if status in (None, "datasheet") else f" ({status})"
    return f"{value:.1f}%{mark}"


def check_cell(r: Result) -> str:
    err, tol = r.check.get("max_abs_err"), r.check.get("tolerance")
    if not units.is_number(err) or not units.is_number(tol):
        return units.DASH
    mark = "ok" if r.check.get("passed") and (r.check.get("last_call") or {}).get("passed", True) else "FAIL"
    return f"{err:.2g} / {tol:.2g} {mark}"


def results_table(results: list[Result], title: str | None = None) -> Table:
    table = Table(title=title, header_style="bold")
    for name, justify in (
        ("op", "left"), ("backend", "left"), ("shape", "left"), ("dtype", "left"), ("median", "right"),
        ("achieved", "right"), ("% peak", "right"), ("% measured", "right"),
        ("error / tol", "right"), ("status", "left"),
    ):  # fmt: skip
        table.add_column(name, justify=justify)
    for r in results:
        if r.interpreted:
            achieved, status = "interpreted", "ok (interpreted: no rate)"
        else:
            achieved = units.rate(r.flops_per_s, "FLOP/s") if r.flops else units.rate(r.bytes_per_s, "B/s")
            status = status_text(r)
        table.add_row(
            safe(r.op),
            safe(r.backend),
            safe(short_shape(r.op, r.shape)),
            safe(r.dtype),
            units.duration(r.median_s),
            achieved,
            pct(r.pct_peak, r.peak_status),
            pct(r.pct_measured_peak),
            check_cell(r),
            status,
        )
    return table


def status_text(r: Result) -> str:
    """'ok'; 'unchecked' in yellow (timed, nobody checked the output); anything else in red, with why."""
    if r.status == "ok":
        return "ok"
    colour = "yellow" if r.status == "unchecked" else "red"
    return f"[{colour}]{safe(r.status)}[/{colour}]" + (f": {safe(r.error)}" if r.error else "")
