"""Writing the report's files: the HTML page, the Markdown file and its figures."""

from __future__ import annotations

import os
from pathlib import Path

from zhisuan.bench.core.result_files import prepare_output
from zhisuan.bench.core.results import Result
from zhisuan.bench.report.assemble import build_document
from zhisuan.bench.report.blocks import Document
from zhisuan.bench.report.to_html import render_html
from zhisuan.bench.report.to_markdown import render_markdown


def prepare_target(path: str | os.PathLike, what: str) -> Path:
    """The output path, its folder created; a directory or an unwritable place is refused."""
    return prepare_output(path, what)


def write_html(doc: Document, path: str | os.PathLike) -> Path:
    path = prepare_target(path, "--html")
    path.write_text(render_html(doc), encoding="utf-8")
    return path


def write_markdown(doc: Document, path: str | os.PathLike) -> Path:
    """The .md file, and its figures in '<name>-figures/' beside it (old figures there replaced)."""
    path = prepare_target(path, "--markdown")
    folder = path.with_name(path.stem + "-figures")
    text, files = render_markdown(doc, folder.name)
    folder.mkdir(exist_ok=True)
    for stale in folder.glob("*.png"):
        stale.unlink()
    for name, png in files.items():
        (folder / name).write_bytes(png)
    path.write_text(text, encoding="utf-8")
    return path


def write_report(
    results: list[Result], out_dir: str | os.PathLike, sources: list[str] = (), name: str = "report"
) -> dict[str, Path]:
    """Both forms of the report in out_dir: {'html': <name>.html, 'markdown': <name>.md,
    'figures': <name>-figures/}. What other commands (validate) call to leave a report behind."""
    out = Path(out_dir)
    doc = build_document(results, sources)
    markdown = write_markdown(doc, out / f"{name}.md")
    return {
        "html": write_html(doc, out / f"{name}.html"),
        "markdown": markdown,
        "figures": markdown.with_name(f"{name}-figures"),
    }
