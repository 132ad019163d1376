"""The two rich consoles every command prints through: results to stdout, progress and notes to stderr.

Text that comes from data (result files, the history database, a backend's error message) reaches
the terminal through safe(): rich would read "[red]" in a backend name as markup (or fail on
"[/x]"), and an escape sequence in a file could move the cursor, retitle the window or hide text.
"""

from __future__ import annotations

import re
import sys

from rich.console import Console
from rich.markup import escape

# C0 controls (ESC starts every terminal escape sequence), DEL and the C1 controls (CSI is 0x9b).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# Rich assumes 80 columns when output is not a terminal (CI logs, pipes): tables need more.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


def safe(value: object) -> str:
    """Data as terminal text: control characters shown as \\xNN, rich markup escaped; one line."""
    text = str(value).replace("\r\n", " ").replace("\n", " ")
    return escape(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text))


def warn(message: str) -> None:
    """A note about the input that did not stop the command: 'zhisuan: warning: ...' on stderr."""
    print(f"zhisuan: warning: {_CONTROL.sub('?', message)}", file=sys.stderr)
