"""The report as a list of format-neutral blocks, rendered alike to HTML and to Markdown.

Sections build blocks; html.py and markdown.py only decide how each block looks, so both files
carry the same content.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# How a cell or a banner reads: colour in HTML, a symbol in Markdown.
TONES = ("ok", "warn", "fail", "skip", "muted")


@dataclass
class Heading:
    text: str
    level: int = 2  # 1 is the page title


@dataclass
class Text:
    text: str
    tone: str | None = None


@dataclass
class Cell:
    text: str
    tone: str | None = None


@dataclass
class Column:
    name: str
    numeric: bool = False  # numbers are right-aligned and never wrapped
    nowrap: bool = False  # short labels (shapes, placements) kept on one line


@dataclass
class Table:
    columns: list[Column]
    rows: list[list[Cell]]
    caption: str = ""


@dataclass
class Figure:
    name: str  # a file-name stem: lowercase letters, digits and dashes
    png: bytes
    alt: str
    caption: str = ""


@dataclass
class Banner:
    """The verdict that opens a validation report: big, coloured, with its counts."""

    verdict: str  # PASS, WARN, FAIL, SKIP or UNKNOWN
    headline: str
    counts: dict[str, int] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)


@dataclass
class Metric:
    """One headline figure with its unit and what it is set against."""

    label: str
    value: str
    note: str = ""


@dataclass
class Metrics:
    items: list[Metric]


Block = Heading | Text | Table | Figure | Banner | Metrics


@dataclass
class Document:
    title: str
    subtitle: str
    blocks: list[Block]

    def figures(self) -> list[Figure]:
        return [b for b in self.blocks if isinstance(b, Figure)]


def verdict_tone(verdict: str | None) -> str:
    return {"PASS": "ok", "WARN": "warn", "FAIL": "fail", "SKIP": "skip"}.get(verdict or "", "muted")
