"""`zhisuan validate`: does this machine, or this cluster, deliver what was bought?"""

from __future__ import annotations

import math
from pathlib import Path

from zhisuan.bench.validate.levels import LEVELS


def add_parser(subparsers) -> None:
    from zhisuan.bench.cli import positive_float, positive_int

    p = subparsers.add_parser(
        "validate",
        help="hardware validation: matmul, memory, attention, interconnect, integrity, burn-in; PASS/WARN/FAIL",
        description="Check and measure every device against thresholds that the output states; "
        "rank 0 gathers all ranks (torchrun / srun / mpirun, or --nproc N), lists stragglers and the "
        "cluster's achieved PFLOPS. Exits 1 when anything FAILs.",
    )
    p.add_argument("--level", choices=LEVELS, default="quick", help="quick (default), standard, or burn-in")
    p.add_argument("--duration", help="burn-in length, e.g. 90s, 10m, 2h (--level burn-in only; default 10m)")
    p.add_argument("--nproc", type=positive_int, help="spawn N local ranks (default: one per GPU, else 1)")
    p.add_argument(
        "--device", choices=("cpu", "cuda"), help="device kind (default: cuda if present, else cpu)"
    )
    p.add_argument("--json", help="JSON Lines output (default: zhisuan-results/validate-<run id>.jsonl)")
    p.add_argument("--thresholds", help="a thresholds file (format of bench/data/thresholds.toml) read first")
    p.add_argument("--margin", type=float, help="straggler margin in %% below the fleet median (default 5)")
    p.add_argument(
        "--timeout", type=positive_float, default=600.0, help="seconds a rank may hang (default 600)"
    )
    p.add_argument("--report-dir", help="where the report goes (default: next to the JSON file)")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from zhisuan.bench.core.errors import UsageError
    from zhisuan.bench.core.result_files import prepare_output
    from zhisuan.bench.core.results import new_run_id
    from zhisuan.bench.validate import thresholds
    from zhisuan.bench.validate.levels import parse_duration

    if args.duration is not None and args.level != "burn-in":
        raise UsageError(f"--duration applies to --level burn-in only (this run: --level {args.level})")
    duration = parse_duration(args.duration) if args.duration is not None else None
    if args.margin is not None and not (math.isfinite(args.margin) and args.margin >= 0):
        raise UsageError(f"--margin must be a finite percentage >= 0, got {args.margin}")
    thresholds.load(args.thresholds)  # a bad file is reported now, in one line, not by every rank
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device (torch.cuda.is_available() is False)")
    try:
        from zhisuan.bench.collectives import rankenv
    except ImportError as exc:
        raise UsageError(
            f"validate needs zhisuan.bench.collectives for its ranks, which fails to import: {exc}"
        ) from None
    env = rankenv.discover()
    if env is not None and args.nproc:
        raise UsageError(
            f"--nproc spawns local ranks; this process is already rank {env.rank} of {env.world} ({env.launcher})"
        )
    from zhisuan.bench.validate.session import Options, run_rank

    run_id = new_run_id()
    json_path = prepare_output(args.json or f"zhisuan-results/validate-{run_id}.jsonl", "--json")
    options = Options(
        level=args.level,
        device=device,
        json_path=str(json_path.resolve()),
        run_id=run_id,
        duration_s=duration,
        thresholds_path=str(Path(args.thresholds).resolve()) if args.thresholds else None,
        margin_pct=args.margin,
        timeout_s=args.timeout,
        report_dir=args.report_dir,
    )
    nproc = args.nproc or (torch.cuda.device_count() if device == "cuda" and env is None else 1)
    if nproc > 1:
        from zhisuan.bench.validate.spawn import run_local

        return run_local(options, nproc)
    return run_rank(options, env or rankenv.SINGLE)
