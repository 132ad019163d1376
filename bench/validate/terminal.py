"""What `zhisuan validate` prints: a line per finished check, then the verdict tables and summary."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from zhisuan.bench.core.console import console, err_console
from zhisuan.bench.core.results import Result, short_shape

COLOURS = {"PASS": "green", "WARN": "yellow", "FAIL": "red", "SKIP": "dim"}


def badge(verdict: str) -> str:
    colour = COLOURS.get(verdict, "white")
    return f"[{colour}]{verdict}[/{colour}]"


def value_text(r: Result) -> str:
    value = r.extra.get("value")
    if value is None:
        return "-"
    return f"{value:.4g} {r.extra.get('unit', '')}".strip()


def ratio_text(r: Result) -> str:
    ratio, threshold = r.extra.get("ratio"), r.extra.get("threshold")
    if ratio is None or not threshold:
        return "-"
    return f"{100 * ratio:.1f}% (pass {100 * threshold['pass']:g}%)"


def label(r: Result) -> str:
    shape = short_shape(r.op, r.shape) if r.shape else ""
    return " ".join(p for p in (r.op, r.dtype, r.backend if r.backend != "-" else "", shape) if p)


def announce(ctx, members, path: str) -> None:
    names = sorted({m.device_name for m in members})
    where = (
        f"{len(members)} ranks on {len({m.host for m in members})} host(s)"
        if len(members) > 1
        else ctx.device.torch_device
    )
    sizes = r" \[test sizes]" if ctx.plan.sizes == "test" else ""  # \[ : a literal bracket in rich markup
    err_console.print(
        f"zhisuan validate --level {ctx.plan.level}{sizes}: {', '.join(names)} ({where}); results: {path}"
    )


def progress(check: str, records: list[Result]) -> None:
    for r in records:
        rank = f"rank {r.extra.get('rank')} " if r.extra.get("world", 1) > 1 else ""
        err_console.print(
            f"  {badge(r.extra.get('verdict', 'SKIP'))} {rank}{escape(label(r))}: {value_text(r)}"
        )


def verdict_table(records: list[Result]) -> Table:
    multi = any(r.extra.get("world", 1) > 1 for r in records)
    table = Table(title="zhisuan validate", header_style="bold")
    columns = (["host", "rank"] if multi else []) + [
        "check",
        "dtype",
        "backend",
        "value",
        "vs basis",
        "verdict",
        "reason",
    ]
    for name in columns:
        table.add_column(
            name, justify="right" if name in ("rank", "value", "vs basis") else "left", overflow="fold"
        )
    for r in records:
        row = [r.extra.get("host", ""), str(r.extra.get("rank"))] if multi else []
        row += [
            r.extra.get("check", r.op),
            r.dtype,
            r.backend,
            value_text(r),
            ratio_text(r),
            badge(r.extra.get("verdict", "SKIP")),
            escape(r.extra.get("reason", "")),
        ]
        table.add_row(*row)
    return table


def straggler_table(stragglers: list[dict]) -> Table:
    table = Table(title="stragglers (below the fleet median of their kind)", header_style="bold")
    for name in ("check", "host", "rank", "value", "median", "deficit"):
        table.add_column(name, justify="right" if name in ("rank", "value", "median", "deficit") else "left")
    for s in stragglers:
        table.add_row(
            s["check"], s["host"], str(s["rank"]), f"{s['value']:.4g} {s['unit']}", f"{s['median']:.4g}",
            f"{s['deficit_pct']:.1f}%",
        )  # fmt: skip
    return table


def cluster_line(info: dict) -> str:
    achieved = info.get("achieved_pflops")
    text = (
        f"cluster {info['dtype']} matmul: achieved {achieved * 1e3:.4g} TFLOP/s"
        if achieved
        else "cluster: no matmul figure"
    )
    if info.get("nameplate_pflops"):
        text += f" of nameplate {info['nameplate_pflops'] * 1e3:.4g} TFLOP/s"
        if info.get("pct_of_nameplate") is not None:
            text += f" ({info['pct_of_nameplate']:.1f}%; {', '.join(info.get('nameplate_status', []))})"
    else:
        text += f"; no nameplate: {escape(str(info.get('nameplate_reason')))}"
    return text + f", over {info['ranks']} rank(s)"


def final(records: list[Result], summary: Result, path: str) -> None:
    console.print(verdict_table(records))
    extra = summary.extra
    if extra["stragglers"]:
        console.print(straggler_table(extra["stragglers"]))
    elif len(extra["devices"]) > 1:
        console.print(f"no stragglers (margin {extra['margin_pct']:g}% below the fleet median)")
    console.print(cluster_line(extra["cluster"]))
    stopped = " (interrupted: judged on what ran)" if extra["interrupted"] else ""
    console.print(
        f"overall: {badge(extra['verdict'])}{stopped} in {extra['duration_s']:.1f} s; results: {path}"
    )
