"""The whole report as a Document: verdict or summary first, then each kind's section, then provenance."""

from __future__ import annotations

import time
from collections import Counter

from zhisuan.bench.core.results import STATUSES, Result
from zhisuan.bench.report import fmt
from zhisuan.bench.report.blocks import Block, Document, Text
from zhisuan.bench.report.grouping import group_by_kind
from zhisuan.bench.report.sections.collective import collective_section
from zhisuan.bench.report.sections.kernel import kernel_section
from zhisuan.bench.report.sections.runs import environment_tables, other_section, runs_section
from zhisuan.bench.report.sections.validate import validate_section

SECTIONS = {"validate": validate_section, "kernel": kernel_section, "collective": collective_section}


def build_document(results: list[Result], sources: list[str] = (), title: str = "zhisuan report") -> Document:
    if not results:
        raise ValueError("results: nothing to report (an empty list of results)")
    groups = group_by_kind(results)
    blocks: list[Block] = []
    if "validate" in groups:
        # The verdict opens the page: validate_section starts with its banner.
        validate = validate_section(groups.pop("validate"))
        blocks += validate[:1] + runs_section(results) + validate[1:]
    else:
        blocks += [status_summary(results)] + runs_section(results)
    for kind, members in groups.items():
        section = SECTIONS.get(kind)
        blocks += section(members) if section else other_section(kind, members)
    blocks += environment_tables(results)
    origin = f" from {', '.join(str(s) for s in sources)}" if sources else ""
    subtitle = f"{len(results)} results{origin}; generated {fmt.utc(time.time())}"
    return Document(title, subtitle, blocks)


def status_summary(results: list[Result]) -> Text:
    counts = Counter(r.status for r in results)
    parts = [f"{counts[s]} {s}" for s in STATUSES if counts.get(s)]
    parts += [f"{n} {s}" for s, n in counts.items() if s not in STATUSES]
    bad = len(results) - counts.get("ok", 0)
    text = f"{len(results)} results: " + ", ".join(parts) + "."
    if bad - counts.get("unchecked", 0):
        text += (
            " Results that failed their check, crashed, wrote into their inputs or reached a rate the chip "
            "cannot give (suspect) are listed as such, with no rate."
        )
    if counts.get("unchecked"):
        text += " Unchecked results were timed without a reference: nobody vouches for what they computed."
    return Text(text, "fail" if bad else "ok")
