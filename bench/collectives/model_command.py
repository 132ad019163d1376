"""`zhisuan collective-model SWEEP.jsonl`: fit the alpha-beta model (zhisuan.bench.collectives.netmodel)
to the all_reduce sweeps of a `zhisuan collective` results file and predict ring, tree and
hierarchical all-reduce at 8 to 16384 GPUs. No ranks are started.

A sweep is the in-place rows of one (implementation, ranks, dtype, reduction op) over several
sizes; a file that holds several is modelled one sweep after another (--backend, --dtype, --op pick).
"""

from __future__ import annotations

import argparse

import numpy as np

from zhisuan.bench.collectives import netmodel
from zhisuan.bench.collectives.sizes import format_size, parse_size
from zhisuan.bench.core.errors import UsageError

DEFAULT_GPUS = tuple(2**k for k in range(3, 15))  # 8 .. 16384
DEFAULT_SIZES = ("64K", "4M", "256M", "1G")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "collective-model",
        help="alpha-beta model of all_reduce fitted to a `zhisuan collective` sweep, predicted at scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "sweep", metavar="SWEEP.jsonl", help="results of `zhisuan collective all_reduce -b .. -e .. -f ..`"
    )
    p.add_argument(
        "--backend", help="model only this implementation's rows (the JSON's backend: gloo, shm, ...)"
    )
    p.add_argument("--dtype", help="model only this dtype's rows")
    p.add_argument("--op", help="model only this reduction's rows")
    p.add_argument("--node-size", type=int, default=8, help="GPUs per node (default 8)")
    p.add_argument(
        "--nic-gbps", type=float, default=400.0, help="bandwidth of one NIC in Gbit/s (default 400)"
    )
    p.add_argument("--nics-per-node", type=int, help="NICs per node (default: one per GPU)")
    p.add_argument(
        "--net-latency-us",
        type=float,
        default=5.0,
        help="inter-node small-message latency alpha_net (default 5 us)",
    )
    p.add_argument(
        "--gpus",
        default=",".join(map(str, DEFAULT_GPUS)),
        help="GPU counts to predict (default 8,16,...,16384)",
    )
    p.add_argument(
        "--sizes", default=",".join(DEFAULT_SIZES), help="message sizes to tabulate (default 64K,4M,256M,1G)"
    )
    p.set_defaults(func=run)
    return p


def load_sweeps(
    path: str, backend=None, dtype=None, op=None
) -> list[tuple[list[float], list[float], int, str]]:
    """[(sizes, median seconds, ranks, label)], one per sweep of checked all_reduce rows in the file."""
    from zhisuan.bench.core.result_files import read_results

    def wanted(r) -> bool:
        return (
            r.kind == "collective"
            and r.op == "all_reduce"
            and r.status == "ok"
            and backend in (None, r.backend)
            and dtype in (None, r.dtype)
            and op in (None, r.extra.get("op"))
        )

    rows = [r for r in read_results(path) if wanted(r)]
    if not rows:
        picked = ", ".join(
            f"{name} {value}" for name, value in (("backend", backend), ("dtype", dtype), ("op", op)) if value
        )
        raise UsageError(f"{path}: no checked all_reduce results{f' of {picked}' if picked else ''}")
    rows = [r for r in rows if r.extra.get("in_place")] or rows  # in place: no copy inside the time
    sweeps: dict[tuple, dict[int, list[float]]] = {}
    for r in rows:
        key = (r.backend, int(r.shape["ranks"]), r.dtype, r.extra.get("op") or "sum")
        sweeps.setdefault(key, {}).setdefault(int(r.shape["bytes"]), []).append(r.median_s)
    out = []
    for (name, ranks, dt, reduction), by_size in sorted(sweeps.items(), key=str):
        sizes = sorted(by_size)
        times = [float(np.median(by_size[s])) for s in sizes]
        out.append(([float(s) for s in sizes], times, ranks, f"{name}, {ranks} ranks, {dt} {reduction}"))
    return out


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
        raise UsageError(f"{what}: {exc}") from None
    if not values:
        raise UsageError(f"{what}: empty list")
    return values


def run(args) -> int:
    """Print, per sweep: the fit, its held-out check, the predicted table and the crossovers."""
    for name, value in (("--node-size", args.node_size), ("--nic-gbps", args.nic_gbps)):
        if not value > 0:
            raise UsageError(f"{name} must be positive, got {value}")
    nics = args.nics_per_node or args.node_size
    if nics < 1 or args.net_latency_us < 0:
        raise UsageError("--nics-per-node must be at least 1 and --net-latency-us not negative")
    gpus = _parse_list(args.gpus, int, "--gpus")
    if any(p < 1 for p in gpus):
        raise UsageError("--gpus: GPU counts must be positive")
    sizes_out = _parse_list(args.sizes, parse_size, "--sizes")
    sweeps = load_sweeps(args.sweep, args.backend, args.dtype, args.op)
    if not any(len(sizes) >= 2 and ranks >= 2 for sizes, _, ranks, _ in sweeps):
        raise UsageError(
            f"{args.sweep}: no sweep of at least 2 sizes on at least 2 ranks to fit "
            "(measure one with e.g. `zhisuan collective all_reduce --nproc 2 -b 8 -e 32M -f 4`)"
        )
    per_gpu_bw = nics * args.nic_gbps * 1e9 / 8 / args.node_size  # bytes/s
    for sizes, times, ranks, label in sweeps:
        if len(sizes) < 2 or ranks < 2:
            print(f"# {label}: skipped ({len(sizes)} size(s) on {ranks} rank(s): the fit needs 2 and 2)\n#")
            continue
        fit = netmodel.fit_ring(sizes, times, ranks)
        net = netmodel.Network(
            fit.alpha, fit.beta, args.net_latency_us * 1e-6, 1 / per_gpu_bw, args.node_size
        )
        print(f"# alpha-beta model fitted to {args.sweep} ({label}, {len(sizes)} sizes)")
        print(
            f"#   intra-node: alpha {fit.alpha * 1e6:.3f} us, beta {fit.beta * 1e12:.2f} ps/B "
            f"(link bandwidth {1 / fit.beta / 1e9 if fit.beta else float('inf'):.2f} GB/s)"
        )
        print(
            f"#   network: alpha {args.net_latency_us:g} us, {nics} x {args.nic_gbps:g} Gbit/s NICs per "
            f"{args.node_size}-GPU node = {per_gpu_bw / 1e9:.2f} GB/s per GPU"
        )
        _print_held_out(sizes, times, ranks)
        _print_predictions(gpus, sizes_out, net)
    return 0


def _print_held_out(sizes: list[float], times: list[float], ranks: int) -> None:
    if len(sizes) < 4:
        return
    errors = netmodel.held_out_errors(sizes, times, ranks)
    rel = [abs(pred - meas) / meas for _, meas, pred in errors]
    print(
        f"# held-out check (fit on every other size, predict the rest): median error "
        f"{np.median(rel) * 100:.1f}%, worst {max(rel) * 100:.1f}%"
    )
    for size, meas, pred in errors:
        print(f"#   {format_size(int(size)):>6}: measured {meas * 1e6:10.2f} us, model {pred * 1e6:10.2f} us")


def _print_predictions(gpus: list[int], sizes_out: list[int], net: netmodel.Network) -> None:
    algorithms = netmodel.ALGORITHMS
    print("#")
    header = f"{'GPUs':>6} {'size':>6} " + " ".join(f"{alg + ' us':>16}" for alg in algorithms)
    print(header + f" {'best':>13} {'busbw GB/s':>11}")
    for p in gpus:
        for size in sizes_out:
            t = {alg: netmodel.predict(alg, p, size, net) for alg in algorithms}
            best = min(t, key=t.get)
            cells = " ".join(f"{t[alg] * 1e6:16.1f}" for alg in algorithms)
            print(
                f"{p:6d} {format_size(size):>6} {cells} {best:>13} {netmodel.busbw(p, size, t[best]) / 1e9:11.2f}"
            )
    print("#\n# crossover sizes (fastest algorithm by message size)")
    for p in gpus:
        text = ", ".join(f"{alg} from {_approx(start)}" for alg, start in netmodel.best_by_size(p, net))
        print(f"{p:6d} GPUs: {text}")
    print("#")
