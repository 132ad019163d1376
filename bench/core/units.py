"""Numbers as a person reads them, in one place: every figure with its unit, a missing one a dash.

Used by the terminal tables, the reports (HTML and Markdown), the gate's outputs and the
development benchmarks alike, so that "1.23 ms" or "123 GFLOP/s" reads the same everywhere.
"""

from __future__ import annotations

import math

DASH = "—"
SI_PREFIXES = (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3))
BINARY_PREFIXES = (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))


def duration(seconds: float | None) -> str:
    """1.234e-3 -> '1.23 ms'; below a microsecond, ns."""
    if seconds is None:
        return DASH
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def rate(value: float | None, unit: str) -> str:
    """1.23e11, 'FLOP/s' -> '123 GFLOP/s'."""
    if value is None:
        return DASH
    for prefix, scale in SI_PREFIXES:
        if value >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def size(nbytes: float | None) -> str:
    """Message and buffer sizes in binary units, as nccl-tests' 64K and 128M mean them: '64 KiB'."""
    if nbytes is None:
        return DASH
    for unit, scale in BINARY_PREFIXES:
        if nbytes >= scale:
            return f"{nbytes / scale:.4g} {unit}"
    return f"{nbytes:.0f} B"


def percent(value: float | None) -> str:
    """98.46 -> '98.5%'; small values keep three significant digits: '1.23%'."""
    if value is None:
        return DASH
    return f"{value:.3g}%" if abs(value) < 10 else f"{value:.1f}%"


def si_scale(values: list[float]) -> tuple[float, str]:
    """The SI prefix that makes the largest value read between 1 and 1000: (factor, prefix)."""
    largest = max((abs(v) for v in values), default=0.0)
    for prefix, factor in SI_PREFIXES:
        if largest >= factor:
            return factor, prefix
    return 1.0, ""


def is_number(value) -> bool:
    """A finite int or float (not a bool, a string or NaN)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
