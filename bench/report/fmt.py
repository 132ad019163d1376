"""Numbers as a person reads them: always with their unit; a missing figure is a dash, never 0."""

from __future__ import annotations

import math
import time

from zhisuan.bench.core.display import human_rate, human_time

DASH = "—"
BINARY_PREFIXES = (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))


def rate(value: float | None, unit: str) -> str:
    return DASH if value is None else human_rate(value, unit)


def duration(seconds: float | None) -> str:
    return DASH if seconds is None else human_time(seconds).replace("us", "µs")


def size(nbytes: float | None) -> str:
    """Message sizes in binary units, as nccl-tests' 64K and 128M mean them: '64 KiB'."""
    if nbytes is None:
        return DASH
    for unit, scale in BINARY_PREFIXES:
        if nbytes >= scale:
            return f"{nbytes / scale:.4g} {unit}"
    return f"{nbytes:.0f} B"


def percent(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value:.3g}%" if abs(value) < 10 else f"{value:.1f}%"


def quantity(value, unit: str | None) -> str:
    """A validation value: '812 TFLOP/s', 'True', '0 mismatches'."""
    if value is None:
        return DASH
    text = f"{value:.4g}" if is_number(value) else str(value)
    return f"{text} {unit}" if unit else text


def plain(value) -> str:
    """A recorded value of any JSON type as a short line of text."""
    if value is None or value == []:
        return DASH
    if isinstance(value, dict):
        return ", ".join(f"{k}={plain(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(plain(v) for v in value)
    return str(value)


def utc(timestamp: float | None) -> str:
    if timestamp is None:
        return DASH
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


def si_scale(values: list[float]) -> tuple[float, str]:
    """The SI prefix that makes the largest value read between 1 and 1000: (factor, prefix)."""
    largest = max((abs(v) for v in values), default=0.0)
    for prefix, factor in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if largest >= factor:
            return factor, prefix
    return 1.0, ""


def is_number(value) -> bool:
    """A finite int or float (not a bool, a string or NaN)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
