"""Message sizes as nccl-tests writes them: 8, 64K, 128M, 8G (K, M, G are powers of 1024)."""

from __future__ import annotations

import re

from zhisuan.bench.core.errors import UsageError

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'64K' -> 65536. Accepts an optional B/iB after the unit ('64KB', '64KiB'); case-insensitive."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(
            f"size {text!r} is not a byte count: write a number with an optional K, M, G or T suffix "
            "(e.g. 8, 64K, 128M, 8G)"
        )
    value = float(match.group(1)) * _UNITS[match.group(2).upper()]
    if value != int(value):
        raise ValueError(f"size {text!r} is not a whole number of bytes")
    return int(value)


def format_size(nbytes: int) -> str:
    """65536 -> '64K'; sizes that are not whole units stay in bytes."""
    for unit in ("T", "G", "M", "K"):
        scale = _UNITS[unit]
        if nbytes >= scale and nbytes % scale == 0:
            return f"{nbytes // scale}{unit}"
    return str(nbytes)


def size_sweep(minbytes: int, maxbytes: int, stepfactor: int = 1, stepbytes: int = 0) -> list[int]:
    """The sizes from minbytes to maxbytes: times stepfactor when it is above 1, else plus stepbytes.

    nccl-tests' rule: -f 2 doubles, -i 1M adds 1 MiB; with neither, only minbytes.
    """
    if minbytes < 0 or maxbytes < 0:
        raise UsageError("sizes must not be negative")
    if maxbytes < minbytes:
        raise UsageError(f"maxbytes ({maxbytes}) is smaller than minbytes ({minbytes})")
    if stepfactor > 1 and minbytes == 0:
        raise UsageError("a step factor needs minbytes > 0 (0 times a factor stays 0)")
    sizes, size = [], minbytes
    while size <= maxbytes:
        sizes.append(size)
        if stepfactor > 1:
            size *= stepfactor
        elif stepbytes > 0:
            size += stepbytes
        else:
            break
    return sizes
