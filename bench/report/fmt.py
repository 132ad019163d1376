"""How the report words a recorded value that is not a plain unit figure (those: core/units.py)."""

from __future__ import annotations

import time

from zhisuan.bench.core import units


def quantity(value, unit: str | None) -> str:
    """A validation value: '812 TFLOP/s', 'True', '0 mismatches'."""
    if value is None:
        return units.DASH
    text = f"{value:.4g}" if units.is_number(value) else str(value)
    return f"{text} {unit}" if unit else text


def plain(value) -> str:
    """A recorded value of any JSON type as a short line of text."""
    if value is None or value == []:
        return units.DASH
    if isinstance(value, dict):
        return ", ".join(f"{k}={plain(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(plain(v) for v in value)
    return str(value)


def utc(timestamp: float | None) -> str:
    if timestamp is None:
        return units.DASH
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))
