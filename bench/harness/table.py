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


# Below this many columns the ten-column table would cut its words ("matm… │ back…"): the compact
# form stacks related fields in one cell instead, so every figure stays whole.
COMPACT_BELOW = 132


def results_table(results: list[Result], title: str | None = None, width: int | None = None) -> Table:
    """One row per result; width (the terminal's columns, if known) picks the full or compact form."""
    cells = [result_cells(r) for r in results]
    if width is not None and width < COMPACT_BELOW:
        table = Table(title=title, header_style="bold")
        for name, justify in (("benchmark", "left"), ("time / rate", "right"), ("% peak / measured", "right"),
                              ("error / tol", "right"), ("status", "left")):  # fmt: skip
            table.add_column(name, justify=justify, overflow="fold")
        for c in cells:
            table.add_row(
                f"{c['op']} {c['backend']}\n{c['shape']} {c['dtype']}",
                f"{c['median']}\n{c['achieved']}",
                f"{c['% peak']}\n{c['% measured']}",
                c["error / tol"],
                c["status"],
            )
        return table
    table = Table(title=title, header_style="bold")
    for name in FULL_COLUMNS:
        table.add_column(name, justify="left" if name in LEFT else "right")
    for c in cells:
        table.add_row(*(c[name] for name in FULL_COLUMNS))
    return table


FULL_COLUMNS = (
    "op",
    "backend",
    "shape",
    "dtype",
    "median",
    "achieved",
    "% peak",
    "% measured",
    "error / tol",
    "status",
)
LEFT = {"op", "backend", "shape", "dtype", "status"}


def result_cells(r: Result) -> dict[str, str]:
    if r.interpreted:
        achieved, status = "interpreted", "ok (interpreted: no rate)"
    else:
        achieved = units.rate(r.flops_per_s, "FLOP/s") if r.flops else units.rate(r.bytes_per_s, "B/s")
        status = status_text(r)
    return {
        "op": safe(r.op),
        "backend": safe(r.backend),
        "shape": safe(short_shape(r.op, r.shape)),
        "dtype": safe(r.dtype),
        "median": units.duration(r.median_s),
        "achieved": achieved,
        "% peak": pct(r.pct_peak, r.peak_status),
        "% measured": pct(r.pct_measured_peak),
        "error / tol": check_cell(r),
        "status": status,
    }


def status_text(r: Result) -> str:
    """'ok'; 'unchecked' in yellow (timed, nobody checked the output); anything else in red, with why."""
    if r.status == "ok":
        return "ok"
    colour = "yellow" if r.status == "unchecked" else "red"
    return f"[{colour}]{safe(r.status)}[/{colour}]" + (f": {safe(r.error)}" if r.error else "")
