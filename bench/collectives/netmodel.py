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
and reports their relative errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from zhisuan.bench.collectives.sizes import format_size, parse_size

ALGORITHMS = ("ring", "tree", "hierarchical")
DEFAULT_GPUS = tuple(2**k for k in range(3, 15))  # 8 .. 16384
DEFAULT_SIZES = ("64K", "4M", "256M", "1G")


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


# ---- the command line ----------------------------------------------------------------------------


def add_arguments(group) -> None:
    group.add_argument(
        "--model", metavar="SWEEP.jsonl", help="fit this all_reduce sweep and predict at scale"
    )
    group.add_argument(
        "--model-backend", help="which backend's rows of the sweep to fit (when it holds several)"
    )
    group.add_argument("--node-size", type=int, default=8, help="GPUs per node (default 8)")
    group.add_argument(
        "--nic-gbps", type=float, default=400.0, help="bandwidth of one NIC in Gbit/s (default 400)"
    )
    group.add_argument("--nics-per-node", type=int, help="NICs per node (default: one per GPU)")
    group.add_argument(
        "--net-latency-us",
        type=float,
        default=5.0,
        help="inter-node small-message latency alpha_net (default 5 us)",
    )
    group.add_argument(
        "--gpus",
        default=",".join(map(str, DEFAULT_GPUS)),
        help="GPU counts to predict (default 8,16,...,16384)",
    )
    group.add_argument("--model-sizes", default=",".join(DEFAULT_SIZES), help="message sizes to tabulate")


def load_sweep(path: str, backend: str | None) -> tuple[list[float], list[float], int, str]:
    """(sizes, median seconds, ranks, label) of the all_reduce rows of a results file."""
    from zhisuan.bench.core.result_files import read_results

    rows = [
        r for r in read_results(path) if r.kind == "collective" and r.op == "all_reduce" and r.status == "ok"
    ]
    if backend:
        rows = [r for r in rows if r.backend == backend]
    if not rows:
        raise ValueError(
            f"{path}: no checked all_reduce results{f' of backend {backend}' if backend else ''}"
        )
    in_place = [r for r in rows if r.extra.get("in_place")]
    rows = in_place or rows
    groups = sorted({(r.backend, r.shape.get("ranks"), r.dtype) for r in rows}, key=str)
    if len(groups) > 1:
        listed = "; ".join(f"{b} on {n} ranks, {d}" for b, n, d in groups)
        raise ValueError(
            f"{path} holds several sweeps ({listed}): pick one with --model-backend or one file each"
        )
    by_size: dict[int, list[float]] = {}
    for r in rows:
        by_size.setdefault(int(r.shape["bytes"]), []).append(r.median_s)
    sizes = sorted(by_size)
    times = [float(np.median(by_size[s])) for s in sizes]
    backend_name, ranks, dtype = groups[0]
    return [float(s) for s in sizes], times, int(ranks), f"{backend_name}, {ranks} ranks, {dtype}"


def _approx(nbytes: float) -> str:
    """98304.7 -> '96K' (three significant digits, powers of 1024)."""
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g}{unit}"
    return f"{nbytes:.3g}" if nbytes else "0"


def _parse_list(text: str, parse, what: str) -> list:
    try:
        values = [parse(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    if not values:
        raise ValueError(f"{what}: empty list")
    return values


def run(args) -> int:
    """`zhisuan collective --model SWEEP.jsonl`: print the fit, its held-out check, table, crossovers."""
    for name, value in (("--node-size", args.node_size), ("--nic-gbps", args.nic_gbps)):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")
    nics = args.nics_per_node or args.node_size
    if nics < 1 or args.net_latency_us < 0:
        raise ValueError("--nics-per-node must be at least 1 and --net-latency-us not negative")
    gpus = _parse_list(args.gpus, int, "--gpus")
    if any(p < 1 for p in gpus):
        raise ValueError("--gpus: GPU counts must be positive")
    sizes_out = _parse_list(args.model_sizes, parse_size, "--model-sizes")

    sizes, times, ranks, label = load_sweep(args.model, args.model_backend)
    fit = fit_ring(sizes, times, ranks)
    per_gpu_bw = nics * args.nic_gbps * 1e9 / 8 / args.node_size  # bytes/s
    net = Network(fit.alpha, fit.beta, args.net_latency_us * 1e-6, 1 / per_gpu_bw, args.node_size)

    print(f"# alpha-beta model fitted to {args.model} ({label}, {len(sizes)} sizes)")
    print(
        f"#   intra-node: alpha {fit.alpha * 1e6:.3f} us, beta {fit.beta * 1e12:.2f} ps/B "
        f"(link bandwidth {1 / fit.beta / 1e9 if fit.beta else float('inf'):.2f} GB/s)"
    )
    print(
        f"#   network: alpha {args.net_latency_us:g} us, {nics} x {args.nic_gbps:g} Gbit/s NICs per "
        f"{args.node_size}-GPU node = {per_gpu_bw / 1e9:.2f} GB/s per GPU"
    )
    if len(sizes) >= 4:
        errors = held_out_errors(sizes, times, ranks)
        rel = [abs(pred - meas) / meas for _, meas, pred in errors]
        print(
            f"# held-out check (fit on every other size, predict the rest): median error "
            f"{np.median(rel) * 100:.1f}%, worst {max(rel) * 100:.1f}%"
        )
        for size, meas, pred in errors:
            print(
                f"#   {format_size(int(size)):>6}: measured {meas * 1e6:10.2f} us, model {pred * 1e6:10.2f} us"
            )
    print("#")
    header = f"{'GPUs':>6} {'size':>6} " + " ".join(f"{alg + ' us':>16}" for alg in ALGORITHMS)
    print(header + f" {'best':>13} {'busbw GB/s':>11}")
    for p in gpus:
        for size in sizes_out:
            t = {alg: predict(alg, p, size, net) for alg in ALGORITHMS}
            best = min(t, key=t.get)
            cells = " ".join(f"{t[alg] * 1e6:16.1f}" for alg in ALGORITHMS)
            print(f"{p:6d} {format_size(size):>6} {cells} {best:>13} {busbw(p, size, t[best]) / 1e9:11.2f}")
    print("#\n# crossover sizes (fastest algorithm by message size)")
    for p in gpus:
        ranges = best_by_size(p, net)
        text = ", ".join(f"{alg} from {_approx(start)}" for alg, start in ranges)
        print(f"{p:6d} GPUs: {text}")
    return 0
