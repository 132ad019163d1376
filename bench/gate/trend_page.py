"""All trends of a history on one static, self-contained HTML page.

The report's look (report/to_html.py: its CSS, images as PNG data URIs) and its rules: inline CSS,
no scripts, nothing fetched from anywhere, every text escaped. At the top a table of the benchmarks
with their latest verdict, each linking to its chart further down (an anchor per benchmark), and a
table of each benchmark's last runs under its chart.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime
from html import escape

from zhisuan.bench.core import units
from zhisuan.bench.core.errors import UsageError
from zhisuan.bench.gate import decision
from zhisuan.bench.gate.trend import Point, latest_verdict
from zhisuan.bench.gate.trend_chart import SHORT_SHA
from zhisuan.bench.report.to_html import CSS, png_size

ROWS_PER_BENCHMARK = 12  # the last runs listed under each chart (the chart has them all)
FIGURE_CAPTION = escape(
    "Commits oldest to newest; each point a run, its bar the interquartile range of its samples. "
    "Red triangle: regressed, green: improved (the gate's verdicts), cross: a failed run."
)
EXTRA_CSS = """
a { color: #1d4ed8; text-decoration: none; } a:hover { text-decoration: underline; }
section.trend { scroll-margin-top: 12px; }
h3 .device { color: var(--muted); font-weight: 400; font-size: 15px; }
.back { font-size: 13px; }
code { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
"""
TONES = {
    decision.REGRESSED: "fail",
    decision.IMPROVED: "ok",
    decision.NOISY: "warn",
    decision.UNCHANGED: "muted",
    "error": "fail",
    "check-failed": "fail",
}


@dataclass
class Trend:
    """One benchmark on one device: its judged runs, the branch of each run, its chart."""

    label: str
    device: str
    points: list[Point]
    branches: dict[str, str | None]  # run id -> branch
    png: bytes | None  # None: no timed run to draw
    why_no_chart: str = ""


def anchor(index: int, label: str, device: str) -> str:
    """A unique, readable fragment id: 'b3-matmul-cpp-m-256-n-256-k-256-fp32-test-cpu-9000'."""
    slug = re.sub(r"[^a-z0-9]+", "-", f"{label} {device}".lower()).strip("-")[:80]
    return f"b{index}-{slug}"


def _pill(verdict: str) -> str:
    return f'<span class="pill {TONES.get(verdict, "muted")}">{escape(verdict)}</span>'


def _change(p: Point) -> str:
    return f"{(p.ratio - 1) * 100:+.1f}%" if p.ratio is not None else "—"


def _commit(p: Point) -> str:
    return f"<code>{escape(p.commit[:SHORT_SHA])}</code>" if p.commit else "—"


def _table(head: list[tuple[str, bool]], rows: list[list[str]]) -> str:
    """Cells are HTML already escaped by the caller; head: (name, numeric)."""
    numeric = ' class="num"'
    th = "".join(f"<th{numeric if num else ''}>{escape(name)}</th>" for name, num in head)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{numeric if num else ''}>{cell}</td>" for (_, num), cell in zip(head, row, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    return f'<div class="table-wrap"><table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


def _summary(trends: list[Trend]) -> str:
    head = [("benchmark", False), ("device", False), ("runs", True), ("latest commit", False),
            ("latest median", True), ("change", True), ("latest verdict", False)]  # fmt: skip
    rows = []
    for i, t in enumerate(trends):
        last = t.points[-1]
        rows.append([
            f'<a href="#{anchor(i, t.label, t.device)}">{escape(t.label)}</a>', escape(t.device),
            str(len(t.points)), _commit(last), escape(units.duration(last.result.median_s)), _change(last),
            _pill(latest_verdict(t.points)),
        ])  # fmt: skip
    return _table(head, rows)


def _counts(trends: list[Trend]) -> str:
    counts: dict[str, int] = {}
    for t in trends:
        verdict = latest_verdict(t.points)
        counts[verdict] = counts.get(verdict, 0) + 1
    pills = "".join(
        f'<span class="pill {TONES.get(v, "muted")}">{n} {escape(v)}</span>'
        for v, n in sorted(counts.items())
    )
    return f'<div class="counts">{pills}</div>'


def _runs_table(t: Trend) -> str:
    head = [("run", False), ("measured", False), ("commit", False), ("branch", False), ("median", True),
            ("change", True), ("verdict", False)]  # fmt: skip
    rows = []
    for p in t.points[-ROWS_PER_BENCHMARK:]:
        r = p.result
        verdict = _pill(p.verdict) if p.verdict else _pill(r.status) if r.status != "ok" else "—"
        if p.note:
            verdict += f" {escape(p.note)}"
        when = datetime.fromtimestamp(r.timestamp).strftime("%Y-%m-%d %H:%M")
        rows.append([f"<code>{escape(r.run_id)}</code>", when, _commit(p), escape(t.branches.get(r.run_id) or "—"),
                     escape(units.duration(r.median_s)), _change(p), verdict])  # fmt: skip
    shown = f"the last {len(rows)} of {len(t.points)} runs" if len(t.points) > len(rows) else "every run"
    return _table(head, rows) + f'<p class="caption">{shown}</p>'


def _trend_section(i: int, t: Trend) -> str:
    title = f'<h3>{escape(t.label)} <span class="device">on {escape(t.device)}</span></h3>'
    if t.png is None:
        figure = f"<p>{escape(t.why_no_chart or 'no run with a timing to draw')}</p>"
    else:
        width, height = png_size(t.png)
        data = base64.b64encode(t.png).decode("ascii")
        alt = f"trend of {t.label} on {t.device} over {len(t.points)} runs"
        figure = (
            f'<figure><img src="data:image/png;base64,{data}" alt="{escape(alt)}" width="{width}" '
            f'height="{height}"><figcaption>{FIGURE_CAPTION}</figcaption></figure>'
        )
    back = '<p class="back"><a href="#benchmarks">back to the table</a></p>'
    return f'<section class="trend" id="{anchor(i, t.label, t.device)}">{title}{figure}{_runs_table(t)}{back}</section>'


def render(trends: list[Trend], *, title: str, facts: list[str], judged_against: str) -> str:
    """The whole page. facts: the subtitle's parts (database, runs, branch, when)."""
    if not trends:
        raise UsageError("no benchmark to draw a trend of")
    body = [
        f'<h2 id="benchmarks">Benchmarks ({len(trends)})</h2>',
        _counts(trends),
        _summary(trends),
        f'<p class="caption">{escape(judged_against)}</p>',
        "<h2>Trends</h2>",
    ] + [_trend_section(i, t) for i, t in enumerate(trends)]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}{EXTRA_CSS}</style></head>\n"
        f'<body><main><h1>{escape(title)}</h1><p class="subtitle">{escape(" · ".join(facts))}</p>\n'
        + "\n".join(body)
        + "\n</main></body></html>\n"
    )
