"""What every section says alike: where and when a number was measured, and a failed result as such."""

from __future__ import annotations

from zhisuan.bench.core.results import Result
from zhisuan.bench.report import fmt
from zhisuan.bench.report.blocks import Cell


def provenance(results: list[Result]) -> str:
    """'AMD EPYC (cpu); run 20261122-080903-c826c4; measured 2026-11-22 08:09 UTC'."""
    run_ids = list(dict.fromkeys(r.run_id or "(no run id)" for r in results))
    stamps = [r.timestamp for r in results]
    first, last = fmt.utc(min(stamps)), fmt.utc(max(stamps))
    when = first if first == last else f"{first} to {last}"
    runs_text = ("run " if len(run_ids) == 1 else "runs ") + ", ".join(run_ids)
    return f"{devices_text(results)}; {runs_text}; measured {when}"


def devices_text(results: list[Result]) -> str:
    """'NVIDIA H100 80GB HBM3 (cuda:0, cuda:1)': each device name once, with its device ids."""
    ids: dict[str, list[str]] = {}
    for r in results:
        ids.setdefault(r.device_name, [])
        if r.device not in ids[r.device_name]:
            ids[r.device_name].append(r.device)
    parts = []
    for name, devices in ids.items():
        shown = ", ".join(devices[:4]) + (f" and {len(devices) - 4} more" if len(devices) > 4 else "")
        parts.append(f"{name} ({shown})")
    return "; ".join(parts)


def status_cell(r: Result) -> Cell:
    """The status column: 'ok', or what went wrong in words ('unchecked': timed, output unverified)."""
    if r.status == "ok":
        return Cell(
            "ok (interpreted: times not meaningful)" if r.interpreted else "ok",
            "muted" if r.interpreted else "ok",
        )
    tone = "warn" if r.status == "unchecked" else "fail"
    return Cell(f"{r.status}: {r.error}" if r.error else r.status, tone)


def failed_cell(r: Result) -> Cell:
    """What stands in a number's place when the result has no trustworthy number."""
    if not r.timed:
        return Cell(r.status, "fail")
    if r.interpreted:
        return Cell("interpreted: no rate", "muted")
    return Cell("no rate recorded", "muted")


def has_rate(r: Result) -> bool:
    """A timing whose rates may be shown: checked (or unchecked, and marked so), not interpreted."""
    return r.timed and not r.interpreted and r.median_s is not None
