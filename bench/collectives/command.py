"""`zhisuan collective`: the command line (nccl-tests' flags where they make sense) and its plan."""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path

from zhisuan.bench.cli import positive_float, positive_int
from zhisuan.bench.collectives import launch, ops, rankenv, rankrun
from zhisuan.bench.collectives.check import EXACT_LIMIT
from zhisuan.bench.collectives.driver import SweepPlan
from zhisuan.bench.collectives.sizes import parse_size, size_sweep
from zhisuan.kernels.registry import dtype_name, parse_dtype

DTYPES_ALL = ("fp32", "fp16", "bf16", "int32")

DESCRIPTION = """\
Time collectives over torch.distributed the way nccl-tests does: per message size, out-of-place and
in-place, time (us), algbw and busbw (GB/s) and #wrong (elements that differ from the exact
result), then the average busbw. Results go to a JSON Lines file, written by rank 0.

Ranks: run under torchrun, srun or mpirun (one process per rank), or let --nproc N spawn N local
processes. A rank that dies or hangs ends the run within --timeout, naming the rank.
Exit codes: 0 ok; 1 wrong data or average busbw below --min-busbw; 2 bad arguments; 3 a rank
died, hung or failed.

The table keeps nccl-tests' columns in nccl-tests' order (scripts that read them by position work)
and adds ours after them: impl, then p50/p95/max over ranks and iterations and the slowest rank.
`zhisuan collective-model SWEEP.jsonl` fits the alpha-beta model to a measured all_reduce sweep."""


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _not_negative(convert, what: str):
    """An argparse type: `convert` the text, refusing what fails or is below 0, naming `what`."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or value < 0:
            raise argparse.ArgumentTypeError(f"expected {what} >= 0, got {text!r}")
        return value

    return parse


_non_negative_int = _not_negative(int, "an integer")
_gbps = _not_negative(float, "a bandwidth in GB/s")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "collective",
        help="nccl-tests-style collective benchmark (all_reduce, all_gather, ...) over torch.distributed",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "collectives",
        nargs="*",
        default=["all_reduce"],
        metavar="COLLECTIVE",
        help=f"{', '.join(ops.COLLECTIVES)} or all (default: all_reduce)",
    )
    size = p.add_argument_group("sizes (8, 64K, 128M, 8G; K = 1024)")
    size.add_argument("-b", "--minbytes", type=_size, default=32 << 20, help="smallest size (default 32M)")
    size.add_argument("-e", "--maxbytes", type=_size, default=32 << 20, help="largest size (default 32M)")
    size.add_argument(
        "-f", "--stepfactor", type=positive_int, default=1, help="multiply the size by this (default 1)"
    )
    size.add_argument("-i", "--stepbytes", type=_size, default=1 << 20, help="else add this (default 1M)")
    what = p.add_argument_group("what and how")
    what.add_argument(
        "-n", "--iters", type=positive_int, default=20, help="timed iterations per size (default 20)"
    )
    what.add_argument(
        "-w", "--warmup-iters", dest="warmup", type=_non_negative_int, default=5, help="untimed (default 5)"
    )
    what.add_argument(
        "-c",
        "--check",
        type=_non_negative_int,
        default=1,
        help="checked iterations per size with fresh data; 0: none (default 1)",
    )
    what.add_argument(
        "-d", "--datatype", default="fp32", help=f"comma-separated, or all ({', '.join(DTYPES_ALL)})"
    )
    what.add_argument(
        "-o", "--op", default="sum", help=f"comma-separated, or all ({', '.join(ops.REDUCE_OPS)})"
    )
    what.add_argument(
        "-r",
        "--root",
        type=_non_negative_int,
        default=0,
        help="root rank of broadcast and reduce (default 0)",
    )
    what.add_argument(
        "-z", "--blocking", type=int, choices=(0, 1), default=0, help="1: synchronise after every GPU call"
    )
    what.add_argument(
        "-G",
        "--cudagraph",
        type=_non_negative_int,
        default=0,
        help="CUDA only: capture the iterations in a graph, launch it N times",
    )
    what.add_argument(
        "-a",
        "--average",
        type=int,
        choices=(0, 1, 2, 3),
        default=1,
        help="combine ranks' times: 0 rank 0, 1 mean (default), 2 min, 3 max",
    )
    what.add_argument(
        "--impl",
        default="torch",
        help="all_reduce through zhisuan.kernels.all_reduce with these backends, comma-separated and run "
        "side by side per size: torch (default), shm, mpi (ranks started by mpirun), ...",
    )
    what.add_argument(
        "--backend", help="torch.distributed backend (default: nccl on cuda, hccl on npu, gloo on cpu)"
    )
    what.add_argument("--device", choices=("cpu", "cuda", "npu"), help="default: cuda when present, else cpu")
    what.add_argument("--seed", type=int, help="seed of the check data (default: random)")
    ranks = p.add_argument_group("ranks")
    ranks.add_argument("--nproc", type=positive_int, help="spawn this many local ranks (127.0.0.1)")
    ranks.add_argument(
        "--no-bind",
        dest="bind",
        action="store_false",
        help="--nproc: do not bind each rank to its own CPUs (default: bound when there are enough)",
    )
    ranks.add_argument(
        "-T",
        "--timeout",
        type=positive_float,
        default=300.0,
        help="seconds before a dead or hung rank ends the run (300)",
    )
    out = p.add_argument_group("results")
    out.add_argument("--json", help="JSON Lines output (default: zhisuan-results/<run id>.jsonl)")
    out.add_argument(
        "--min-busbw", type=_gbps, help="fail (exit 1) when the average busbw (GB/s) is below this"
    )
    p.set_defaults(func=run)
    return p


def _names(text: str, everything: tuple[str, ...], what: str) -> list[str]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise ValueError(f"no {what} given")
    return list(everything) if parts == ["all"] else parts


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


DEFAULT_BACKENDS = {"cuda": "nccl", "npu": "hccl", "cpu": "gloo"}


def build_plan(args) -> SweepPlan:
    """The validated plan (ValueError naming the argument for anything wrong)."""
    from zhisuan.bench.core.results import new_run_id
    from zhisuan.kernels.registry import get as get_backend

    names = ops.COLLECTIVES if args.collectives == ["all"] else args.collectives
    collectives = [ops.get(name).name for name in names]
    dtypes = []
    for name in _names(args.datatype, DTYPES_ALL, "datatype"):
        dtype = parse_dtype(name)
        if dtype not in EXACT_LIMIT:
            raise ValueError(
                f"-d {name}: not supported here (supported: {', '.join(dtype_name(d) for d in EXACT_LIMIT)})"
            )
        dtypes.append(dtype_name(dtype))
    reduce_ops = _names(args.op, ops.REDUCE_OPS, "op")
    for op in reduce_ops:
        if op not in ops.REDUCE_OPS:
            raise ValueError(f"-o {op}: unknown reduction (supported: {', '.join(ops.REDUCE_OPS)})")
    sizes = size_sweep(args.minbytes, args.maxbytes, args.stepfactor, args.stepbytes)
    device = args.device or _default_device()
    backend = args.backend or DEFAULT_BACKENDS[device]
    if args.cudagraph and device != "cuda":
        raise ValueError("-G/--cudagraph needs --device cuda")
    impls = _names(args.impl, ("torch",), "--impl")
    for name in impls:
        if name == "torch":
            continue
        for coll in map(ops.get, collectives):
            if coll.kernel_op is None:
                with_impls = [c.name for c in ops.COLLECTIVES.values() if c.kernel_op]
                raise ValueError(
                    f"--impl {name} applies to {', '.join(with_impls)} only (asked for: {', '.join(collectives)})"
                )
            backend_info = get_backend(coll.kernel_op, name)
            if device not in backend_info.devices:
                raise ValueError(
                    f"--impl {name} runs on {', '.join(sorted(backend_info.devices))}, not on {device}"
                )
            for dtype in dtypes:
                if parse_dtype(dtype) not in backend_info.dtypes_on(device):
                    raise ValueError(f"--impl {name} does not support -d {dtype}")
    if args.nproc and "mpi" in impls:
        from zhisuan.kernels.allreduce.mpi import NEEDS_MPIRUN

        raise ValueError(f"--impl mpi with --nproc: {NEEDS_MPIRUN} (without --nproc)")
    if args.nproc:
        from zhisuan.bench.collectives.driver import validate_world

        validate_world(SweepPlan(collectives, dtypes, reduce_ops, sizes, root=args.root), args.nproc)
    run_id = new_run_id()
    return SweepPlan(
        collectives=collectives,
        dtypes=dtypes,
        ops=reduce_ops,
        sizes=sizes,
        iters=args.iters,
        warmup=args.warmup,
        check=args.check,
        blocking=bool(args.blocking),
        cudagraph=args.cudagraph,
        root=args.root,
        impls=impls,
        average=args.average,
        device=device,
        backend=backend,
        seed=args.seed if args.seed is not None else secrets.randbelow(1 << 30),
        timeout_s=args.timeout,
        bind=args.bind,
        min_busbw=args.min_busbw,
        json_path=str(Path(args.json or f"zhisuan-results/{run_id}.jsonl")),
        run_id=run_id,
    )


def run(args) -> int:
    plan = build_plan(args)
    env = rankenv.discover()
    if args.nproc:
        if env is not None:
            raise ValueError(
                f"--nproc spawns local ranks, but this process is already rank {env.rank} of {env.world} "
                f"started by {env.launcher}: drop --nproc"
            )
        return launch.spawn(args.nproc, plan, args.timeout)
    return rankrun.run_rank(plan, env or rankenv.SINGLE)
