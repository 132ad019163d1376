"""Check data whose collective results are exactly representable, so #wrong counts corruption only.

Rank r's send buffer holds v(r, i) at position i: pseudo-random integers from a seeded hash of
(seed, r, i), scaled so that every partial sum of any reduction order stays below the largest
integer the dtype holds exactly (256 for bf16, 2048 for fp16, 2^24 for fp32). For avg every value is
a multiple of n, so the sum divides exactly. Where n is so large that even values of +-1 would
overflow that bound, only the first ranks contribute non-zero values. The expected output is
computed on each rank in int64 from the same formula, block by block, and compared for equality.
Receive buffers are first filled with a sentinel that no result can take (NaN; the most negative
integer), so a buffer the collective never wrote is counted wrong too.
"""

from __future__ import annotations

from dataclasses import dataclass

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
_P = 2147483647  # 2^31 - 1, prime: the hash works modulo it
_A1, _A2 = 48271, 69621


@dataclass(frozen=True)
class Pattern:
    """Values v(r, i) = multiple * (hash(seed, r, i) mod (2k+1) - k) for r < active, else 0."""

    seed: int
    k: int
    multiple: int
    active: int  # ranks with non-zero values

    def values(self, rank: int | torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """int64 values for (rank, index) pairs; rank may be a tensor shaped like index."""
        base = (self.seed * 7919 + rank * 104729) % _P
        if index.numel() and int(index.max()) >= _P:
            index = index % _P
        h = (index * _A1 + base) % _P
        h = ((h ^ (h >> 11)) * _A2) % _P  # the xor-shift breaks the linearity of the first step
        v = h % (2 * self.k + 1) - self.k
        if self.multiple != 1:
            v = v * self.multiple
        if isinstance(rank, int):
            return v if rank < self.active else torch.zeros_like(v)
        return torch.where(rank < self.active, v, torch.zeros_like(v))


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
        yield start, stop, torch.arange(start, stop, dtype=torch.int64)


def fill(t: torch.Tensor, pattern: Pattern, rank: int) -> None:
    """t[i] = v(rank, i)."""
    for start, stop, index in _blocks(t.numel()):
        t[start:stop].copy_(pattern.values(rank, index).to(t.dtype))


def fill_sentinel(t: torch.Tensor) -> None:
    t.fill_(float("nan") if t.is_floating_point() else torch.iinfo(t.dtype).min)


def reduction(pattern: Pattern, op: str, n: int, index: torch.Tensor) -> torch.Tensor:
    """The exact int64 reduction by op of every rank's values at positions index."""
    acc = pattern.values(0, index)
    for r in range(1, n):
        v = pattern.values(r, index)
        acc = torch.maximum(acc, v) if op == "max" else torch.minimum(acc, v) if op == "min" else acc + v
    return torch.div(acc, n, rounding_mode="floor") if op == "avg" else acc


def count_wrong(coll, recv: torch.Tensor, pattern: Pattern, site) -> int:
    """Elements of this rank's receive buffer that differ from the exact result (0 where unchecked).

    coll: an entry of zhisuan.bench.collectives.ops.COLLECTIVES; site: this rank's ops.Site.
    """
    if not coll.checked_on(site):
        return 0
    host = recv.detach().to("cpu")
    wrong = 0
    for start, stop, j in _blocks(host.numel()):
        want = coll.expected(pattern, site, j)
        got = host[start:stop].to(torch.float64 if host.is_floating_point() else torch.int64)
        wrong += int((got != want.to(got.dtype)).sum())
    return wrong
