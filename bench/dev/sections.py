"""A Markdown file whose sections are rewritten by different scripts: each owns the text between
`<!-- NAME:start -->` and `<!-- NAME:end -->` (docs/benchmarks/gate.md: real runs and synthetic)."""

from __future__ import annotations

from pathlib import Path


def replace_section(path: Path, name: str, text: str) -> None:
    """Put text between NAME's markers in path (appended, with its markers, if they are not there)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    body = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{start}\n{text.rstrip()}\n{end}"
    if start in body and end in body:
        before, _, rest = body.partition(start)
        _, _, after = rest.partition(end)
        body = before + block + after
    else:
        body = body.rstrip() + ("\n\n" if body.strip() else "") + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
