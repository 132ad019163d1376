"""Terminal output: rich tables of results, human units."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from zhisuan.bench.core.results import Result, shape_label

# Rich assumes 80 columns when output is not a terminal (CI logs, pipes): tables need more.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


def short_shape(op: str, shape: dict) -> str:
    """'1024x1024x1024' for matmul; 'b1 h32/8 s2048 d128 causal' for attention; key=value otherwise."""
    if op == "matmul" and {"M", "N", "K"} <= shape.keys():
        label = f"{shape['M']}x{shape['N']}x{shape['K']}"
        return f"{label} {shape['name']}" if "name" in shape else label
    if op == "attention" and "seq_q" in shape:
        s = shape
        heads = f"h{s['heads']}" + (f"/{s['heads_kv']}" if s["heads_kv"] != s["heads"] else "")
        seq = f"s{s['seq_q']}" + (f"/{s['seq_k']}" if s["seq_k"] != s["seq_q"] else "")
        return f"b{s['batch']} {heads} {seq} d{s['head_dim']}" + (" causal" if s["causal"] else "")
    return shape_label(shape)


def human_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def human_rate(value: float | None, unit: str) -> str:
    """1.23e11 FLOP/s -> '123 GFLOP/s'."""
    if value is None:
        return "-"
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def pct(value: float | None, status: str | None = None) -> str:
    if value is None:
        return "-"
    mark = "" if status in (None, "datasheet") else f" ({status})"
    return f"{value:.1f}%{mark}"


def check_cell(r: Result) -> str:
    if not r.check:
        return "-"
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
            achieved = human_rate(r.flops_per_s, "FLOP/s") if r.flops else human_rate(r.bytes_per_s, "B/s")
            status = r.status if r.status == "ok" else f"[red]{r.status}[/red]: {r.error}"
        table.add_row(
            r.op,
            r.backend,
            short_shape(r.op, r.shape),
            r.dtype,
            human_time(r.median_s),
            achieved,
            pct(r.pct_peak, r.peak_status),
            pct(r.pct_measured_peak),
            check_cell(r),
            status,
        )
    return table
