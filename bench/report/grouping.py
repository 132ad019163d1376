"""Sorting results out for the report: by kind, by any key, and per run."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from zhisuan.bench.core.results import Result
from zhisuan.bench.report.sections.common import devices_text

KINDS = ("validate", "kernel", "collective")  # the order of the report's sections


def group_by_kind(results: list[Result]) -> dict[str, list[Result]]:
    """Results per kind: the known kinds in report order, then any other kind."""
    groups: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        groups[r.kind].append(r)
    ordered = {kind: groups.pop(kind) for kind in KINDS if kind in groups}
    ordered.update(sorted(groups.items()))
    return ordered


def group_by(results: list[Result], key) -> dict[tuple, list[Result]]:
    """Results grouped by key(result), groups in order of first appearance."""
    groups: dict[tuple, list[Result]] = {}
    for r in results:
        groups.setdefault(key(r), []).append(r)
    return groups


@dataclass
class Run:
    """What one run id covers: where and when it ran, with which software."""

    run_id: str
    kinds: list[str]
    devices: str
    hosts: list[str]
    started: float
    ended: float
    total: int
    failed: int


def runs(results: list[Result]) -> list[Run]:
    out = []
    for (run_id,), members in group_by(results, lambda r: (r.run_id,)).items():
        stamps = [r.timestamp for r in members]
        out.append(
            Run(
                run_id=run_id or "(no run id)",
                kinds=_unique(r.kind for r in members),
                devices=devices_text(members),
                hosts=_unique(str(r.env.get("host") or r.extra.get("host") or "unknown") for r in members),
                started=min(stamps),
                ended=max(stamps),
                total=len(members),
                failed=sum(r.status != "ok" for r in members),
            )
        )
    return out


def _unique(items) -> list[str]:
    return list(dict.fromkeys(items))
