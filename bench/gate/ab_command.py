"""`zhisuan ab BASELINE CURRENT`: two versions of the code timed in one job, judged by the gate's rule.

    zhisuan ab main HEAD                          # two git revisions of the repository here
    zhisuan ab main . matmul --shape 1024         # main against the working tree as it is on disk
    zhisuan ab python:/venvs/old/bin/python python:/venvs/new/bin/python

Each side runs in its own worker processes (ab_sides.py: worktrees, builds, environments); rounds
alternate between them on the same inputs (ab_measure.py); each benchmark is judged over its epochs'
paired log-ratios (decision.from_epochs). Output, exit codes, Markdown and JUnit are compare's:
0 no regression, 1 a benchmark regressed, 2 cannot compare (a side failed, a benchmark missing, the
environments differ, bad input).
"""

from __future__ import annotations

import time
from pathlib import Path

from zhisuan.bench.cli import positive_float, positive_int, seed_arg
from zhisuan.bench.gate import compare_command
from zhisuan.bench.harness import command

DEFAULT_THRESHOLD = 0.03  # ab pairs its rounds, so it can resolve (and afford) a smaller effect than compare
DEFAULT_MAX_TIME_S = 240.0


def add_parser(subparsers) -> None:
    from zhisuan.bench.gate import ab_measure

    p = subparsers.add_parser(
        "ab",
        help="time two versions of the code in one job, alternating, and judge them as compare does",
        description="Time BASELINE and CURRENT (git revisions, source trees, or Python interpreters), each in "
        "its own worker processes, round by round in alternation on the same inputs, and judge each "
        "benchmark over the epochs' paired ratios. Exit 0: no regression, 1: regression, 2: cannot compare.",
    )
    p.add_argument(
        "baseline", help="git revision (or git:REV), source tree (tree:PATH) or interpreter (python:PATH)"
    )
    p.add_argument("current", help="the same kinds as BASELINE; '.' is the working tree as it is on disk")
    command.add_selection_options(p)
    p.add_argument(
        "--seed", type=seed_arg, default=0, help="seed of the random inputs (the same on both sides)"
    )
    p.add_argument("--no-flush", action="store_true", help="do not flush caches between samples")
    p.add_argument(
        "--repo", help="git repository of the revisions (default: the one around the current folder)"
    )
    p.add_argument(
        "--workdir", default="~/.cache/zhisuan/ab", help="worktrees, links and builds (default %(default)s)"
    )
    p.add_argument("--python", help="interpreter for git revisions and source trees (default: this one)")
    p.add_argument(
        "--no-build", action="store_true", help="do not build the extensions of revisions and trees"
    )
    p.add_argument("--min-epochs", type=positive_int, default=ab_measure.MIN_EPOCHS, help="epochs before stopping early (default %(default)s)")  # fmt: skip
    p.add_argument("--max-epochs", type=positive_int, default=ab_measure.MAX_EPOCHS, help="most epochs, each a fresh pair of processes (default %(default)s)")  # fmt: skip
    p.add_argument("--rounds", type=positive_int, help=f"alternating rounds per epoch (default: {ab_measure.ROUNDS_PER_EPOCH}, or as many as let --max-epochs epochs fit in --max-time, at least {ab_measure.MIN_FITTED_ROUNDS})")  # fmt: skip
    p.add_argument("--block-time", type=positive_float, default=ab_measure.BLOCK_S, help="timed seconds per block (default %(default)s)")  # fmt: skip
    p.add_argument(
        "--precision", type=compare_command.threshold_arg,
        help="stop a benchmark once its interval's half-width is this narrow (default: half the threshold)",
    )  # fmt: skip
    p.add_argument(
        "--max-time", type=positive_float, default=DEFAULT_MAX_TIME_S,
        help="seconds after which no epoch begins (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--json", help="JSON Lines of both sides' results (default: zhisuan-results/ab-<time>.jsonl)"
    )
    compare_command.add_gate_options(p)
    p.set_defaults(func=run, threshold=DEFAULT_THRESHOLD)


def run(args) -> int:
    import torch

    from zhisuan.bench.core.console import err_console
    from zhisuan.bench.core.errors import UsageError
    from zhisuan.bench.core.result_files import ResultWriter
    from zhisuan.bench.core.results import new_run_id
    from zhisuan.bench.gate import ab_measure, ab_report, ab_sides
    from zhisuan.bench.gate.settings import load_settings

    settings = load_settings(args.thresholds, args.threshold, args.alpha)
    if args.min_epochs < 2 or args.max_epochs < args.min_epochs:
        raise UsageError(
            f"need 2 <= --min-epochs <= --max-epochs, got {args.min_epochs} and {args.max_epochs}"
        )
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cases = plan_cases(args, device)
    workdir = Path(args.workdir).expanduser()
    repo = Path(args.repo).resolve() if args.repo else ab_sides.default_repo()
    started = time.monotonic()
    sides = []
    for label, spec in (("A", args.baseline), ("B", args.current)):
        err_console.print(f"side {label}: preparing {spec} ...")
        side = ab_sides.resolve(
            label, spec, repo=repo, workdir=workdir, python=args.python, build=not args.no_build
        )
        err_console.print(f"side {label}: {side.description}" + "".join(f"; {n}" for n in side.notes))
        sides.append(side)
    plan = ab_measure.AbPlan(
        min_epochs=args.min_epochs, max_epochs=args.max_epochs, rounds=args.rounds, block_s=args.block_time,
        precision=args.precision if args.precision is not None else settings.threshold / 2,
        threshold=settings.threshold, alpha=settings.alpha,
        max_time_s=args.max_time, flush=not args.no_flush, seed=args.seed,
    )  # fmt: skip
    benches = ab_measure.measure(sides, cases, device, plan, on_progress=lambda text: err_console.print(text))
    report, results = ab_report.build(benches, sides, device, settings, args)
    path = Path(args.json or f"zhisuan-results/ab-{new_run_id()}.jsonl")
    with ResultWriter(path) as writer:
        for result in results:
            writer.write(result)
    code = compare_command.show(report, args, "zhisuan ab")
    err_console.print(f"A: {sides[0].description}; B: {sides[1].description}; "
                      f"{time.monotonic() - started:.0f} s; results: {path}")  # fmt: skip
    return code


def plan_cases(args, device: str) -> list[dict]:
    """The benchmarks to time, as the worker's JSON cases: the suite's or --shape's shapes; the
    backends named, or every backend this installation can run (a side without one says so)."""
    from zhisuan.bench.core.console import err_console
    from zhisuan.bench.core.errors import UsageError
    from zhisuan.bench.harness import runner
    from zhisuan.kernels.registry import dtype_name

    causal = {"no": (False,), "yes": (True,), "both": (False, True)}[args.causal]
    shapes = runner.shapes_for(args.ops, device, args.suite, args.shape, causal, args.tokens)
    if args.backend:
        from zhisuan.kernels import registry

        dtypes = args.dtype or [runner.DEFAULT_DTYPES[device.split(":")[0]]]
        cases = [{"op": op, "shape": shape, "dtype": dtype_name(registry.parse_dtype(d)), "backends": list(args.backend)}
                 for op in args.ops for d in dtypes for shape in shapes[op]]  # fmt: skip
    else:
        plan = runner.plan_run(args.ops, shapes, args.dtype, device)
        for what, reason in plan.skipped:
            err_console.print(f"[yellow]skipped[/yellow] {what}: {reason}")
        cases = [{"op": c.op, "shape": c.shape, "dtype": dtype_name(c.dtype), "backends": [b.name for b in c.backends]}
                 for c in plan.cases]  # fmt: skip
    if not cases:
        raise UsageError("nothing to time: no shape or no available backend for these ops and dtypes")
    return cases
