"""`zhisuan report RESULTS... [--html FILE] [--markdown FILE] [--out-dir DIR]`."""

from __future__ import annotations

from pathlib import Path

DEFAULT_DIR = "zhisuan-report"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="turn result files into a readable HTML page and Markdown, with plots",
        description="Read JSON Lines results of any kind (kernel runs, collectives, validation) and write "
        "one self-contained HTML page (plots embedded) and the same content as Markdown (plots as PNG "
        f"files beside it). Without --html or --markdown, both go to {DEFAULT_DIR}/.",
    )
    p.add_argument("results", nargs="+", help="JSON Lines or pytest-benchmark JSON files, or directories")
    p.add_argument("--html", help="write the HTML page here")
    p.add_argument("--markdown", help="write the Markdown here (figures in <name>-figures/ beside it)")
    p.add_argument("--out-dir", help=f"write report.html and report.md here (default: {DEFAULT_DIR})")
    p.add_argument("--title", default="zhisuan report", help="the report's title")
    p.set_defaults(func=run)


def run(args) -> int:
    from zhisuan.bench.core.console import console, safe
    from zhisuan.bench.core.errors import UsageError
    from zhisuan.bench.core.result_files import read_results, refuse_overwrite
    from zhisuan.bench.report.assemble import build_document
    from zhisuan.bench.report.blocks import Banner
    from zhisuan.bench.report.output import prepare_target, write_html, write_markdown

    if args.out_dir and (args.html or args.markdown):
        raise UsageError("--out-dir writes both forms; give it, or --html/--markdown, not both")
    out = Path(args.out_dir or DEFAULT_DIR)
    targets = {"--html": args.html, "--markdown": args.markdown}
    if not (args.html or args.markdown):
        targets = {"--out-dir (report.html)": out / "report.html", "--out-dir (report.md)": out / "report.md"}
    refuse_overwrite(targets, args.results)
    for what, path in targets.items():
        if path:
            prepare_target(path, what)  # refuse a bad output path before the work of drawing
    results = read_results(args.results)
    doc = build_document(results, args.results, title=args.title)
    written = []
    try:
        if args.html or args.markdown:
            written += [write_html(doc, args.html)] if args.html else []
            written += [write_markdown(doc, args.markdown)] if args.markdown else []
        else:
            written = [write_html(doc, out / "report.html"), write_markdown(doc, out / "report.md")]
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise UsageError(f"cannot write the report: {exc.strerror or exc}{where}") from None
    banner = next((b for b in doc.blocks if isinstance(b, Banner)), None)
    if banner is not None:
        console.print(f"verdict: {safe(banner.verdict)} ({safe(banner.headline)})")
    console.print(f"{len(results)} results, {len(doc.figures())} figures")
    for path in written:
        console.print(f"report: {safe(path)}")
    return 0
