"""The one Markdown writer of tables and inline text, with one escaping rule.

Every text that comes from data (a backend name, a shape, an error message, a path) is escaped
before it reaches Markdown, so it reads as the text it is wherever it lands: a PR comment, a
report, docs/benchmarks/. Markup that zhisuan adds itself (bold verdicts, code spans, symbols) is
built with bold() / code() or wrapped in Markup, which this module trusts and leaves alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

# Characters that start Markdown or HTML markup inside a line, and the table's cell separator.
_SPECIAL = re.compile(r"([\\`*_\[\]<>|!~&#])")
# C0 controls and DEL (terminal escapes, NUL) have no business in a document; newlines end a row.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class Markup(str):
    """Text that is already Markdown (made by this module's helpers or by zhisuan's own code)."""


def escape(text: object) -> Markup:
    """Any value as Markdown text that renders as itself, on one line."""
    if isinstance(text, Markup):
        return text
    plain = _CONTROL.sub("", str(text)).replace("\r", " ").replace("\n", " ")
    return Markup(_SPECIAL.sub(r"\\\1", plain))


def bold(text: object) -> Markup:
    return Markup(f"**{escape(text)}**") if str(text) else Markup("")


def code(text: object) -> Markup:
    """A code span; a backtick inside would end it, so it becomes a quote."""
    plain = _CONTROL.sub("", str(text)).replace("\n", " ").replace("`", "'")
    return Markup(f"`{plain}`")


def table(columns: Sequence[str], rows: Iterable[Sequence[object]], numeric: Sequence[bool] = ()) -> str:
    """A GitHub-flavoured table; numeric columns are right-aligned. Cells are escaped unless Markup."""
    rule = ["---:" if i < len(numeric) and numeric[i] else "---" for i in range(len(columns))]
    lines = [_row(columns), "|" + "|".join(rule) + "|"]
    lines += [_row(cells) for cells in rows]
    return "\n".join(lines)


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(escape(c) for c in cells) + " |"
