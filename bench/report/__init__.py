"""`zhisuan report`: results of any kind as one self-contained HTML page and the same in Markdown.

    from zhisuan.bench.report import write_report
    paths = write_report(results, "out/")   # {'html': ..., 'markdown': ..., 'figures': ...}

write_report is loaded on first use, so registering the subcommand does not import matplotlib.
"""

from __future__ import annotations

__all__ = ["write_report"]


def __getattr__(name: str):
    if name == "write_report":
        from zhisuan.bench.report.output import write_report

        return write_report
    raise AttributeError(f"module 'zhisuan.bench.report' has no attribute {name!r}")
