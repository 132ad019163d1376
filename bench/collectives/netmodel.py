"""The alpha-beta model of all-reduce: fit it to a measured sweep, predict it at 8 to 16384 GPUs.

Cost model (Thakur, Rabenseifner & Gropp, "Optimization of Collective Communication Operations in
MPICH", IJHPCA 19(1), 2005): sending m bytes between two ranks takes alpha + m * beta, alpha the
latency, beta the time per byte (1 / bandwidth). The reductions' arithmetic (their gamma) is folded
into beta here, as it is measured together with the transfer.

All-reduce of m bytes over p ranks, g ranks per node, N = p / g nodes:
  ring          T = 2(p-1) alpha + 2 (p-1)/p m beta
                a reduce-scatter then an all-gather, each p-1 steps of m/p bytes per rank.
  tree          T = 2 ceil(log2 p) (alpha + m beta)
                a binomial-tree reduce to one rank, then a binomial-tree broadcast, the whole message
                at every step: latency-optimal, bandwidth-poor.
  hierarchical  T = 2(g-1) alpha_in + 2 (g-1)/g m beta_in             reduce-scatter, all-gather in a node
                  + 2(N-1) alpha_net + 2 (N-1)/N (m/g) beta_net        ring all-reduce of each 1/g slice
                across the N nodes, the g slices in parallel (one ring per GPU and its NIC share).
When a flat algorithm (ring, tree) spans nodes, each of its steps is as slow as its slowest link:
it uses alpha_net and max(beta_in, beta_net). On one node (p <= g) everything uses the fitted
intra-node alpha_in, beta_in.

Parameters: alpha_in and beta_in are fitted to a measured all_reduce sweep on p0 ranks of one node,
assuming the measured implementation is a ring (NCCL, gloo and shm on few ranks are close to it):
t(m) = a + b m with a = 2(p0-1) alpha_in and b = 2(p0-1)/p0 beta_in, least squares on the relative
error (weights 1/t^2), so small and large sizes count alike. The network comes from the command
line: beta_net = g / (NICs per node x NIC bandwidth), i.e. each GPU's share of the node's NICs, and
alpha_net the end-to-end small-message latency of the fabric (default 5 us, an assumption).

busbw = (m / T) 2 (p-1)/p, nccl-tests' all_reduce bus bandwidth, so predictions read like
measurements. Every T is linear in m, so the size where the best algorithm changes (the crossover)
is exact: m* = (a_1 - a_2) / (b_2 - b_1).

The fit is checked on points it did not see: fitted on every other size, it predicts the others
and reports their relative errors. The command: zhisuan.bench.collectives.model_command.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ALGORITHMS = ("ring", "tree", "hierarchical")


@dataclass(frozen=True)
class Fit:
    alpha: float  # seconds
    beta: float  # seconds per byte
    ranks: int


@dataclass(frozen=True)
class Network:
    alpha_in: float
    beta_in: float
    alpha_net: float
    beta_net: float
    node_size: int


def fit_ring(sizes: list[float], times: list[float], ranks: int) -> Fit:
    """alpha, beta of a ring all-reduce on `ranks` ranks from measured (bytes, seconds) points."""
    if ranks < 2:
        raise ValueError("the model needs a sweep measured on at least 2 ranks")
    if len(sizes) < 2:
        raise ValueError(f"the model needs at least 2 measured sizes, got {len(sizes)}")
    m = np.asarray(sizes, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    if np.any(t <= 0):
        raise ValueError("measured times must be positive")
    # minimise sum(((a + b m) - t) / t)^2: rows scaled by 1/t
    design = np.stack([np.ones_like(m), m], axis=1) / t[:, None]
    (a, b), *_ = np.linalg.lstsq(design, np.ones_like(t), rcond=None)
    a, b = max(float(a), 0.0), max(float(b), 0.0)
    return Fit(alpha=a / (2 * (ranks - 1)), beta=b * ranks / (2 * (ranks - 1)), ranks=ranks)


def ring_time(fit: Fit, size: float) -> float:
    """The fitted ring model on the fitted rank count (what the sweep itself should show)."""
    p = fit.ranks
    return 2 * (p - 1) * fit.alpha + 2 * (p - 1) / p * size * fit.beta


def coefficients(algorithm: str, p: int, net: Network) -> tuple[float, float]:
    """(a, b) with T(m) = a + b m for the algorithm on p ranks."""
    g = min(net.node_size, p)
    nodes = math.ceil(p / g)
    alpha, beta = (
        (net.alpha_in, net.beta_in) if nodes == 1 else (net.alpha_net, max(net.beta_in, net.beta_net))
    )
    if algorithm == "ring":
        return 2 * (p - 1) * alpha, 2 * (p - 1) / p * beta
    if algorithm == "tree":
        steps = math.ceil(math.log2(p)) if p > 1 else 0
        return 2 * steps * alpha, 2 * steps * beta
    if algorithm == "hierarchical":
        a = 2 * (g - 1) * net.alpha_in + 2 * (nodes - 1) * net.alpha_net
        b = 2 * (g - 1) / g * net.beta_in + 2 * (nodes - 1) / nodes * net.beta_net / g
        return a, b
    raise ValueError(f"unknown algorithm {algorithm!r}; algorithms: {', '.join(ALGORITHMS)}")


def predict(algorithm: str, p: int, size: float, net: Network) -> float:
    a, b = coefficients(algorithm, p, net)
    return a + b * size


def busbw(p: int, size: float, seconds: float) -> float:
    return size / seconds * 2 * (p - 1) / p if seconds > 0 else 0.0


def best_by_size(p: int, net: Network, max_size: float = float(1 << 40)) -> list[tuple[str, float]]:
    """[(algorithm, from_bytes), ...]: the fastest algorithm on each range of sizes, in order."""
    coeffs = {alg: coefficients(alg, p, net) for alg in ALGORITHMS}
    points = {0.0}
    for i, x in enumerate(ALGORITHMS):
        for y in ALGORITHMS[i + 1 :]:
            (a1, b1), (a2, b2) = coeffs[x], coeffs[y]
            if b1 != b2:
                cross = (a2 - a1) / (b1 - b2)
                if 0 < cross < max_size:
                    points.add(cross)
    edges = sorted(points) + [max_size]
    ranges: list[tuple[str, float]] = []
    for lo, hi in zip(edges, edges[1:], strict=False):
        mid = (lo + hi) / 2 if hi < max_size else lo * 2 + 1
        best = min(ALGORITHMS, key=lambda alg: coeffs[alg][0] + coeffs[alg][1] * mid)
        if not ranges or ranges[-1][0] != best:
            ranges.append((best, lo))
    return ranges


def held_out_errors(sizes: list[float], times: list[float], ranks: int) -> list[tuple[float, float, float]]:
    """Fit on the even-indexed sizes; (size, measured, predicted) at the odd-indexed ones."""
    order = np.argsort(sizes)
    s = [float(sizes[i]) for i in order]
    t = [float(times[i]) for i in order]
    fit = fit_ring(s[0::2], t[0::2], ranks)
    return [(s[i], t[i], ring_time(fit, s[i])) for i in range(1, len(s), 2)]
