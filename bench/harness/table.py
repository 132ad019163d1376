"""The table `zhisuan run` prints: one row per result, rates against the peaks, the check beside them."""

from __future__ import annotations

from rich.table import Table

from zhisuan.bench.core import units
from zhisuan.bench.core.results import Result, short_shape


def pct(value: float | None, status: str | None = None) -> str:
    if value is None:
        return units.DASH
    mark = "" if status in (None, "datasheet") else f" ({status})"
    return f"{value:.1f}%{mark}"


def check_cell(r: Result) -> str:
    if not r.check:
        return units.DASH
    mark = "ok" if r.check.get("passed") else "FAIL"
    return f"{r.check['max_abs_err']:.2g} / {r.check['tolerance']:.2g} {mark}"


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
            status = r.status if r.status == "ok" else f"[red]{r.status}[/red]: {r.error}"
        table.add_row(
            r.op,
            r.backend,
            short_shape(r.op, r.shape),
            r.dtype,
            units.duration(r.median_s),
            achieved,
            pct(r.pct_peak, r.peak_status),
            pct(r.pct_measured_peak),
            check_cell(r),
            status,
        )
    return table
