"""Check data whose collective results are exactly representable, so #wrong counts corruption only.

Rank r's send buffer holds v(r, i) at position i: pseudo-random integers from a seeded hash of
(seed, r, i), scaled so that every partial sum of any reduction order stays below the largest
integer the dtype holds exactly (256 for bf16, 2048 for fp16, 2^24 for fp32). For avg every value is
a multiple of n, so the sum divides exactly. Where n is so large that even values of +-1 would
overflow that bound, only the first ranks contribute non-zero values. The expected output is
computed on each rank in int64 from the same formula, block by block, and compared for equality.
Receive buffers are first filled with a sentinel that no result can take (NaN; the most negative
integer), so a buffer the collective never wrote is counted wrong too.

The hash is a 32-bit integer mix (xor-shift and multiply, wrapping in uint32) evaluated by numpy,
in place: a few passes over memory per element, so making and checking the data of a 32 MB buffer
costs far less than the collective it checks (the int64 modular hash it replaced took 10x longer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Largest integer magnitude each dtype represents exactly (and contiguously from 0).
EXACT_LIMIT = {
    torch.float16: 2048,
    torch.bfloat16: 256,
    torch.float32: 1 << 24,
    torch.float64: 1 << 53,
    torch.int32: (1 << 31) - 1,
    torch.int64: (1 << 62),
}
MAX_MAGNITUDE = 1000  # values stay small: their variety matters, not their size
BLOCK = 1 << 22  # elements per block when filling and checking (bounds the int64 temporaries)
TIMING_PERIOD = 65521  # elements of the block that fill_for_timing repeats (a prime)
_MASK32 = 0xFFFFFFFF
_MIX = np.uint32(0x45D9F3B)  # multiplier of the 32-bit integer mix ("hash32" of T. Mueller)


@dataclass(frozen=True)
class Pattern:
    """Values v(r, i) = multiple * (hash(seed, r, i) mapped onto -k..k) for r < active, else 0."""

    seed: int
    k: int
    multiple: int
    active: int  # ranks with non-zero values

    def values(self, rank: int | np.ndarray, index: np.ndarray) -> np.ndarray:
        """int64 values for (rank, index) pairs; rank may be an array shaped like index."""
        index = np.asarray(index, dtype=np.int64)
        rank = rank if isinstance(rank, int) else np.asarray(rank, dtype=np.int64)
        base = (self.seed * 0x165667B1 + rank * 0x61C88647) & _MASK32
        x = index.astype(np.uint32)  # the position modulo 2^32 ...
        if index.size and int(index.max()) > _MASK32:  # ... and its high bits, for buffers over 4G elements
            x += (index >> 32).astype(np.uint32) * np.uint32(0x27D4EB2F)
        x += base.astype(np.uint32) if isinstance(base, np.ndarray) else np.uint32(base)
        for _ in range(2):
            x ^= x >> 16
            x *= _MIX
        x ^= x >> 16
        x &= 0xFFFF  # 16 well-mixed bits, mapped onto 0..2k by a multiply and a shift
        x *= np.uint32(2 * self.k + 1)
        x >>= 16
        v = x.astype(np.int64)
        v -= self.k
        if self.multiple != 1:
            v *= self.multiple
        if isinstance(rank, int):
            return v if rank < self.active else np.zeros_like(v)
        return np.where(rank < self.active, v, 0)


def pattern_for(dtype: torch.dtype, op: str | None, n: int, seed: int) -> Pattern:
    """The widest value range that keeps op's results over n ranks exact in dtype."""
    if dtype not in EXACT_LIMIT:
        raise ValueError(f"no exact check data for dtype {dtype}")
    limit = EXACT_LIMIT[dtype]
    if op in ("max", "min") or op is None:  # no arithmetic: any representable value is exact
        return Pattern(seed, min(MAX_MAGNITUDE, limit), 1, n)
    multiple = n if op == "avg" else 1
    if multiple > limit:
        raise ValueError(f"cannot build exact avg check data for {n} ranks in {dtype}")
    k = max(1, min(MAX_MAGNITUDE, limit // (n * multiple)))
    active = min(n, limit // (k * multiple))
    return Pattern(seed, k, multiple, active)


def _blocks(n: int):
    """(start, stop, int64 positions) covering range(n) in blocks of BLOCK."""
    for start in range(0, n, BLOCK):
        stop = min(n, start + BLOCK)
        yield start, stop, np.arange(start, stop, dtype=np.int64)


def fill(t: torch.Tensor, pattern: Pattern, rank: int) -> None:
    """t[i] = v(rank, i)."""
    for start, stop, index in _blocks(t.numel()):
        t[start:stop].copy_(torch.from_numpy(pattern.values(rank, index)).to(t.dtype))


def fill_for_timing(t: torch.Tensor, pattern: Pattern, rank: int) -> None:
    """t holds v(rank, i mod TIMING_PERIOD): varied data for the timed calls, at the cost of a copy.

    The timed calls' results are never checked (fresh data is, afterwards), so their data need not
    be unique across the whole buffer: one hashed block, repeated, is as realistic for timing.
    """
    flat = t.view(-1)
    block = torch.from_numpy(pattern.values(rank, np.arange(min(flat.numel(), TIMING_PERIOD)))).to(t.dtype)
    for start in range(0, flat.numel(), block.numel()):
        stop = min(flat.numel(), start + block.numel())
        flat[start:stop].copy_(block[: stop - start])


def fill_sentinel(t: torch.Tensor) -> None:
    t.fill_(float("nan") if t.is_floating_point() else torch.iinfo(t.dtype).min)


def reduction(pattern: Pattern, op: str, n: int, index: np.ndarray) -> np.ndarray:
    """The exact int64 reduction by op of every rank's values at positions index."""
    acc = pattern.values(0, index)
    combine = {"max": np.maximum, "min": np.minimum}.get(op, np.add)
    for r in range(1, n):
        combine(acc, pattern.values(r, index), out=acc)
    return np.floor_divide(acc, n) if op == "avg" else acc


def count_wrong(coll, recv: torch.Tensor, pattern: Pattern, site) -> int:
    """Elements of this rank's receive buffer that differ from the exact result (0 where unchecked).

    coll: an entry of zhisuan.bench.collectives.ops.COLLECTIVES; site: this rank's ops.Site.
    """
    if not coll.checked_on(site):
        return 0
    host = recv.detach().to("cpu")
    wrong = 0
    for start, stop, j in _blocks(host.numel()):
        # Compared in the buffer's dtype, which holds every expected value exactly (pattern_for).
        want = torch.from_numpy(coll.expected(pattern, site, j)).to(host.dtype)
        wrong += int(host[start:stop].ne(want).sum())
    return wrong
