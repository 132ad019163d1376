"""The kernel_benchmark tables at the end of a pytest run: pytest-benchmark's columns, then FLOP/s and % of peak.

One table per group (the `benchmark` marker's group or measure(group=...)), ungrouped first, rows
sorted by their minimum and every time in one unit per table, as pytest-benchmark prints its own.
The statistics are pytest-benchmark's (its Stats class) where it is installed; without it they
are zhisuan's (numpy's quartiles, so the IQR can differ a little), and the title says so.
"""

from __future__ import annotations

import io
import statistics
from collections import defaultdict
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from zhisuan.bench.core import pytest_json, units
from zhisuan.bench.core.stats import summarize
from zhisuan.bench.harness.table import pct

if TYPE_CHECKING:
    from zhisuan.bench.gate.pytest_plugin import Measurement

TIME_COLUMNS = (("min", "Min"), ("max", "Max"), ("mean", "Mean"), ("stddev", "StdDev"),
                ("median", "Median"), ("iqr", "IQR"))  # fmt: skip
TIME_UNITS = (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9))


def describe(samples: list[float]) -> tuple[dict, bool]:
    """min, max, mean, stddev, median, iqr, rounds of the samples; True when pytest-benchmark computed them."""
    try:
        return pytest_json.stats_of(samples), True
    except pytest_json.PytestBenchmarkMissing:
        summary = summarize(samples)
        described = {"min": summary.min_s, "max": max(samples), "mean": summary.mean_s,
                     "stddev": statistics.stdev(samples) if len(samples) > 1 else 0.0,
                     "median": summary.median_s, "iqr": summary.iqr_s, "rounds": summary.n}  # fmt: skip
        return described, False


def time_unit(fastest: float) -> tuple[str, float]:
    """The unit in which the fastest time reads at least 1, as pytest-benchmark scales its tables."""
    return next(((name, scale) for name, scale in TIME_UNITS if fastest >= scale), TIME_UNITS[-1])


def summary_tables(measurements: list[Measurement]) -> list[tuple[str, str]]:
    """(title, table text) per group."""
    groups: dict[str | None, list[Measurement]] = defaultdict(list)
    for m in measurements:
        groups[m.group].append(m)
    return [_table(group, groups[group]) for group in sorted(groups, key=lambda g: g or "")]


def _table(group: str | None, members: list[Measurement]) -> tuple[str, str]:
    rows = sorted(((m, *describe(m.result.samples_s)) for m in members), key=lambda row: row[1]["min"])
    unit, scale = time_unit(rows[0][1]["min"])
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column(f"Name (time in {unit})")
    for _, label in TIME_COLUMNS:
        table.add_column(label, justify="right")
    for label in ("Rounds", "FLOP/s", "% peak"):
        table.add_column(label, justify="right")
    for m, stats, _ in rows:
        table.add_row(
            m.name,
            *(f"{stats[key] / scale:,.4f}" for key, _ in TIME_COLUMNS),
            str(stats["rounds"]),
            units.rate(m.result.flops_per_s, "FLOP/s"),
            pct(m.result.pct_peak, m.result.peak_status),
        )
    buffer = io.StringIO()
    Console(file=buffer, width=1000, color_system=None, highlight=False).print(table)
    title = f"kernel_benchmark{'' if group is None else f' {group!r}'}: {len(rows)} measurement(s)"
    if not all(theirs for _, _, theirs in rows):
        title += " (zhisuan's statistics: pytest-benchmark is not installed)"
    return title, "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())
