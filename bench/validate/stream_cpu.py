"""STREAM's four kernels for CPUs, as numba parallel loops (one prange over the array each).

    copy   c = a          2 arrays touched: 16 bytes per element (fp64), read + written
    scale  b = s * c      16 bytes
    add    c = a + b      24 bytes
    triad  a = b + s * c  24 bytes
Bytes are counted as STREAM counts them: what is read plus what is written, no write-allocate.
Compiled on first use and cached on disk (numba cache=True), so later runs start at once. They run
on numba's thread count, which zhisuan.bench.core.threads sets (with every other pool's).
"""

from __future__ import annotations

import numpy as np

try:
    import numba
    from numba import njit, prange
except ImportError as exc:  # numba is a dependency; its absence is reported, never a crash
    numba = None
    NUMBA_MISSING = f"numba is not installed ({exc})"
else:
    NUMBA_MISSING = None

BYTES_PER_ELEMENT = {"copy": 16, "scale": 16, "add": 24, "triad": 24}

if numba is not None:

    @njit(parallel=True, cache=True)
    def _fill(x, seed):
        # A cheap deterministic pattern in [1, 2), written in parallel so each page is first
        # touched by the thread that will stream it (NUMA placement as in STREAM's own init).
        for i in prange(x.shape[0]):
            x[i] = 1.0 + ((i * 2654435761 + seed) % 1000003) / 1000003.0

    @njit(parallel=True, cache=True)
    def _copy(a, c):
        for i in prange(a.shape[0]):
            c[i] = a[i]

    @njit(parallel=True, cache=True)
    def _scale(b, c, s):
        for i in prange(b.shape[0]):
            b[i] = s * c[i]

    @njit(parallel=True, cache=True)
    def _add(a, b, c):
        for i in prange(a.shape[0]):
            c[i] = a[i] + b[i]

    @njit(parallel=True, cache=True)
    def _triad(a, b, c, s):
        for i in prange(a.shape[0]):
            a[i] = b[i] + s * c[i]


class CpuStream:
    """Three fp64 arrays of n elements and the four kernels over them (STREAM's a, b, c)."""

    scalar = 3.0

    def __init__(self, n: int):
        if NUMBA_MISSING:
            raise RuntimeError(NUMBA_MISSING)
        if n < 1:
            raise ValueError(f"STREAM array length must be at least 1, got {n}")
        self.n = n
        self.a, self.b, self.c = (np.empty(n, dtype=np.float64) for _ in range(3))
        for seed, x in enumerate((self.a, self.b, self.c)):
            _fill(x, seed * 7919)

    def kernel(self, name: str):
        """The zero-argument callable of one kernel."""
        a, b, c, s = self.a, self.b, self.c, self.scalar
        return {
            "copy": lambda: _copy(a, c),
            "scale": lambda: _scale(b, c, s),
            "add": lambda: _add(a, b, c),
            "triad": lambda: _triad(a, b, c, s),
        }[name]

    def expected(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(the array the kernel writes, what numpy says it must hold) on the current inputs."""
        a, b, c, s = self.a, self.b, self.c, self.scalar
        return {
            "copy": (c, a.copy()),
            "scale": (b, s * c),
            "add": (c, a + b),
            "triad": (a, b + s * c),
        }[name]
