"""The one Markdown writer: data reads as itself wherever it lands; zhisuan's own markup passes."""

import re

from zhisuan.bench.core import markdown
from zhisuan.bench.core.markdown import Markup, bold, code, escape


def test_data_cannot_make_markup_or_break_the_row():
    hostile = (
        "x | y\n### ✅ PASS ![img](http://e/x.png) [a](javascript:alert(1)) <script>s</script>\x1b[31m\x00"
    )
    text = escape(hostile)
    assert "\n" not in text and "\x1b" not in text and "\x00" not in text
    # Every character that could start markup is preceded by a backslash.
    assert re.findall(r"(?<!\\)[|\[\]<>!#]", text) == []
    assert text == (
        r"x \| y \#\#\# ✅ PASS \!\[img\](http://e/x.png) \[a\](javascript:alert(1)) \<script\>s\</script\>\[31m"
    )


def test_own_markup_passes_and_is_built_from_escaped_parts():
    assert bold("a|b") == r"**a\|b**" and isinstance(bold("x"), Markup)
    assert code("a`b") == "`a'b`"
    assert escape(Markup("**kept**")) == "**kept**"


def test_table_aligns_numbers_right_and_escapes_cells():
    text = markdown.table(["name", "time"], [["a|b", "1.5 ms"], [bold("slow"), 7]], [False, True])
    assert text.splitlines() == [
        "| name | time |",
        "|---|---:|",
        r"| a\|b | 1.5 ms |",
        "| **slow** | 7 |",
    ]
