"""The two rich consoles every command prints through: results to stdout, progress and notes to stderr."""

from __future__ import annotations

import sys

from rich.console import Console

# Rich assumes 80 columns when output is not a terminal (CI logs, pipes): tables need more.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)
