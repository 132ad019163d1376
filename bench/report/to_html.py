"""The Document as one self-contained HTML page: inline CSS, images as base64 data URIs, no scripts,
nothing fetched from anywhere, so the file can be mailed, archived and opened offline."""

from __future__ import annotations

import base64
import struct
from html import escape

from zhisuan.bench.report.blocks import (
    Banner,
    Block,
    Document,
    Figure,
    Heading,
    Metrics,
    Table,
    Text,
    verdict_tone,
)

CSS = """
:root { --ink:#18181b; --muted:#71717a; --line:#e4e4e7; --ok:#15803d; --ok-bg:#dcfce7;
  --warn:#b45309; --warn-bg:#fef3c7; --fail:#b91c1c; --fail-bg:#fee2e2; --skip:#52525b; --skip-bg:#f4f4f5; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f4f5; color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 32px 36px 72px; background: #fff; min-height: 100vh; }
h1 { font-size: 30px; margin: 0 0 2px; letter-spacing: -0.01em; }
.subtitle { color: var(--muted); margin: 0 0 24px; }
h2 { font-size: 22px; margin: 44px 0 12px; padding-bottom: 6px; border-bottom: 2px solid var(--line); }
h3 { font-size: 18px; margin: 30px 0 10px; }
h4 { font-size: 15px; margin: 22px 0 8px; color: #3f3f46; }
p { margin: 8px 0; max-width: 80ch; }
p.t-ok, p.t-fail, p.t-warn { font-weight: 600; }
.banner { border: 2px solid; border-radius: 12px; padding: 20px 26px; margin: 14px 0 26px; }
.banner .verdict { font-size: 52px; font-weight: 800; letter-spacing: 0.05em; line-height: 1.05; }
.banner .headline { font-size: 18px; font-weight: 600; margin: 6px 0 10px; color: var(--ink); }
.banner .detail { color: #3f3f46; font-size: 14px; margin: 2px 0; }
.banner.ok { background: var(--ok-bg); border-color: var(--ok); } .banner.ok .verdict { color: var(--ok); }
.banner.warn { background: var(--warn-bg); border-color: var(--warn); } .banner.warn .verdict { color: var(--warn); }
.banner.fail { background: var(--fail-bg); border-color: var(--fail); } .banner.fail .verdict { color: var(--fail); }
.banner.skip, .banner.muted { background: var(--skip-bg); border-color: var(--skip); }
.counts { display: flex; gap: 10px; flex-wrap: wrap; margin: 4px 0 10px; }
.pill { display: inline-block; border-radius: 999px; padding: 1px 10px; font-weight: 700; font-size: 13px;
  border: 1px solid; white-space: nowrap; }
.counts .pill { font-size: 15px; padding: 3px 14px; background: #fff; }
.pill.ok { color: var(--ok); border-color: var(--ok); background: var(--ok-bg); }
.pill.warn { color: var(--warn); border-color: var(--warn); background: var(--warn-bg); }
.pill.fail { color: var(--fail); border-color: var(--fail); background: var(--fail-bg); }
.pill.skip, .pill.muted { color: var(--skip); border-color: #a1a1aa; background: var(--skip-bg); }
.table-wrap { overflow-x: auto; border: 1px solid var(--line); border-radius: 8px; margin: 10px 0 4px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; font-variant-numeric: tabular-nums; }
th { background: #f4f4f5; text-align: left; font-weight: 600; padding: 8px 9px;
  border-bottom: 1px solid var(--line); vertical-align: bottom; }
td { padding: 6px 9px; border-bottom: 1px solid #f0f0f2; vertical-align: top; }
tbody tr:nth-child(even) td { background: #fafafa; }
tbody tr:last-child td { border-bottom: none; }
th.num { text-align: right; }
td.num { text-align: right; white-space: nowrap; }
td.nowrap { white-space: nowrap; }
td:not(.num):not(.nowrap) { min-width: 14ch; }
td.t-ok { color: var(--ok); } td.t-warn { color: var(--warn); font-weight: 600; }
td.t-fail { color: var(--fail); font-weight: 600; } td.t-muted, td.t-skip { color: var(--muted); }
.caption { color: var(--muted); font-size: 13px; margin: 4px 2px 18px; }
figure { margin: 16px 0 26px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 8px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; max-width: 110ch; }
.metrics { display: flex; gap: 14px; flex-wrap: wrap; margin: 10px 0 18px; }
.metric { flex: 1 1 240px; border: 1px solid var(--line); border-radius: 10px; padding: 14px 18px; }
.metric .label { text-transform: uppercase; letter-spacing: 0.06em; font-size: 12px; color: var(--muted); }
.metric .value { font-size: 28px; font-weight: 700; margin: 2px 0; }
.metric .note { font-size: 13px; color: var(--muted); }
"""
VERDICT_WORDS = {"PASS", "WARN", "FAIL", "SKIP", "UNKNOWN"}


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the PNG header (IHDR), so the page reserves the image's room."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or len(png) < 24:
        raise ValueError("figure is not a PNG image")
    return struct.unpack(">II", png[16:24])


def _tone_class(prefix: str, tone: str | None) -> str:
    return f' class="{prefix}{tone}"' if tone else ""


def _table(table: Table) -> str:
    numeric = ' class="num"'
    head = "".join(f"<th{numeric if c.numeric else ''}>{escape(c.name)}</th>" for c in table.columns)
    body = []
    for row in table.rows:
        cells = []
        for column, cell in zip(table.columns, row, strict=True):
            classes = ["num"] if column.numeric else ["nowrap"] if column.nowrap else []
            classes += [f"t-{cell.tone}"] if cell.tone else []
            attr = f' class="{" ".join(classes)}"' if classes else ""
            text = escape(cell.text)
            if cell.text in VERDICT_WORDS and cell.tone:
                text = f'<span class="pill {cell.tone}">{text}</span>'
            cells.append(f"<td{attr}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    caption = f'<p class="caption">{escape(table.caption)}</p>' if table.caption else ""
    return (
        f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>{caption}"
    )


def _figure(figure: Figure) -> str:
    width, height = png_size(figure.png)
    data = base64.b64encode(figure.png).decode("ascii")
    caption = f"<figcaption>{escape(figure.caption)}</figcaption>" if figure.caption else ""
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{escape(figure.alt)}" '
        f'width="{width}" height="{height}">{caption}</figure>'
    )


def _banner(banner: Banner) -> str:
    tone = verdict_tone(banner.verdict)
    counts = "".join(
        f'<span class="pill {verdict_tone(v) if n else "muted"}">{n} {escape(v)}</span>'
        for v, n in banner.counts.items()
    )
    details = "".join(f'<p class="detail">{escape(d)}</p>' for d in banner.details)
    return (
        f'<section class="banner {tone}" id="verdict"><div class="verdict">{escape(banner.verdict)}</div>'
        f'<div class="headline">{escape(banner.headline)}</div><div class="counts">{counts}</div>{details}</section>'
    )


def _metrics(metrics: Metrics) -> str:
    items = "".join(
        f'<div class="metric"><div class="label">{escape(m.label)}</div><div class="value">{escape(m.value)}</div>'
        f'<div class="note">{escape(m.note)}</div></div>'
        for m in metrics.items
    )
    return f'<div class="metrics">{items}</div>'


def _block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{escape(block.text)}</h{block.level}>"
    if isinstance(block, Text):
        return f"<p{_tone_class('t-', block.tone)}>{escape(block.text)}</p>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Figure):
        return _figure(block)
    if isinstance(block, Banner):
        return _banner(block)
    if isinstance(block, Metrics):
        return _metrics(block)
    raise TypeError(f"block: no HTML form for {type(block).__name__}")


def render_html(doc: Document) -> str:
    body = "\n".join(_block(b) for b in doc.blocks)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(doc.title)}</title><style>{CSS}</style></head>\n"
        f'<body><main><h1>{escape(doc.title)}</h1><p class="subtitle">{escape(doc.subtitle)}</p>\n'
        f"{body}\n</main></body></html>\n"
    )
