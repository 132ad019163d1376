"""The Document as Markdown (GitHub flavour): the same blocks as the HTML page, figures as PNG files
written beside the .md and linked by relative path.

Every text of a block is plain text (it may quote result files: backend names, error messages,
hosts), so each goes through core/markdown.escape; only the markup added here is Markdown.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from zhisuan.bench.core import markdown
from zhisuan.bench.core.markdown import Markup, bold, escape
from zhisuan.bench.report.blocks import (
    Banner,
    Block,
    Cell,
    Document,
    Figure,
    Heading,
    Metrics,
    Table,
    Text,
    verdict_tone,
)

SYMBOLS = {"ok": "✅", "warn": "⚠️", "fail": "❌", "skip": "⏭️", "muted": "❔"}


def figure_file_names(doc: Document) -> dict[int, str]:
    """A unique, readable file name per figure: '03-roofline-fp32-amd-epyc.png', keyed by id()."""
    names = {}
    for index, figure in enumerate(doc.figures(), start=1):
        slug = re.sub(r"[^a-z0-9]+", "-", figure.name.lower()).strip("-")[:60] or "figure"
        names[id(figure)] = f"{index:02d}-{slug}.png"
    return names


def _cell(cell: Cell) -> Markup:
    if cell.text in ("PASS", "WARN", "FAIL", "SKIP", "UNKNOWN") and cell.tone:
        return Markup(f"{SYMBOLS[cell.tone]} {bold(cell.text)}")
    return bold(cell.text) if cell.tone == "fail" else escape(cell.text)


def _table(table: Table) -> str:
    rows = [[_cell(c) for c in row] for row in table.rows]
    text = markdown.table([c.name for c in table.columns], rows, [c.numeric for c in table.columns])
    return text + (f"\n\n*{escape(table.caption)}*" if table.caption else "")


def _banner(banner: Banner) -> str:
    tone = verdict_tone(banner.verdict)
    counts = " · ".join(f"{escape(n)} {escape(v)}" for v, n in banner.counts.items())
    lines = [
        f"## {SYMBOLS[tone]} Verdict: {escape(banner.verdict)}",
        "",
        f"{bold(banner.headline)} — {counts}",
        "",
    ]
    lines += [f"- {escape(d)}" for d in banner.details]
    return "\n".join(lines)


def _metrics(metrics: Metrics) -> str:
    rows = [[m.label, bold(m.value), m.note] for m in metrics.items]
    return markdown.table(["figure", "value", "what it is"], rows, [False, True, False])


def _block(block: Block, folder: str, names: dict[int, str]) -> str:
    if isinstance(block, Heading):
        return "#" * block.level + " " + escape(block.text)
    if isinstance(block, Text):
        return bold(block.text) if block.tone in ("fail", "warn") else escape(block.text)
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Figure):  # the file name is made here from a slug: safe in a link
        link = f"![{escape(block.alt)}]({quote(folder)}/{names[id(block)]})"
        return link + (f"\n\n*{escape(block.caption)}*" if block.caption else "")
    if isinstance(block, Banner):
        return _banner(block)
    if isinstance(block, Metrics):
        return _metrics(block)
    raise TypeError(f"block: no Markdown form for {type(block).__name__}")


def render_markdown(doc: Document, folder: str) -> tuple[str, dict[str, bytes]]:
    """The Markdown text, and the figure files it links to ({file name: PNG bytes}) inside `folder`."""
    names = figure_file_names(doc)
    parts = [f"# {escape(doc.title)}", f"*{escape(doc.subtitle)}*"] + [
        _block(b, folder, names) for b in doc.blocks
    ]
    files = {names[id(f)]: f.png for f in doc.figures()}
    return "\n\n".join(parts) + "\n", files
