"""`zhisuan info` (devices, peak figures and their sources, backends) and `zhisuan run` (check and time
kernels, print the table, write every result as it arrives)."""

from __future__ import annotations

import argparse
from pathlib import Path

from zhisuan.bench.cli import default_device, device_arg, parse_csv, positive_float, positive_int, seed_arg
from zhisuan.bench.core import precision  # the round defaults, without importing torch
from zhisuan.bench.core.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError


def add_parser(subparsers) -> None:
    add_info_parser(subparsers)
    add_run_parser(subparsers)


# ---- zhisuan info ------------------------------------------------------------------------------


def add_info_parser(subparsers) -> None:
    p = subparsers.add_parser("info", help="detected devices, their peak figures and sources, backends")
    p.add_argument("--no-probe", action="store_true", help="skip the CPU FMA probe (a fraction of a second)")
    p.add_argument(
        "--device",
        type=device_arg,
        help="only this device: cpu, cuda:1, npu:0, xpu, ... (default: every device found)",
    )
    p.set_defaults(func=run_info)


def run_info(args) -> int:
    from rich.table import Table

    from zhisuan import kernels
    from zhisuan.bench.core import chips
    from zhisuan.bench.core.console import console
    from zhisuan.kernels.registry import OPS

    for name in [args.device] if args.device else chips.available_devices():
        device = chips.detect(name)
        props = ", ".join(f"{k}={v}" for k, v in device.properties.items() if k != "isa_reasoning")
        console.print(f"[bold]{name}[/bold]: {device.name} ({props})")
        if device.spec is None:
            console.print(f"  no peak figures: {device.why_no_peak}")
        else:
            if device.spec.name_source:
                console.print(f"  matched as {device.spec.name} (device name: {device.spec.name_source})")
            if not device.spec.tflops:
                console.print(f"  no TFLOP/s figures: {device.spec.source}")
            for dtype, fig in device.spec.tflops.items():
                console.print(f"  peak {dtype}: {fig.value:.4g} TFLOP/s [{fig.status}] {fig.source}")
            if device.spec.mem_tbps:
                fig = device.spec.mem_tbps
                console.print(f"  memory bandwidth: {fig.value:.4g} TB/s [{fig.status}] {fig.source}")
        if device.kind == "cpu" and not args.no_probe:
            for dtype in ("fp32", "fp64"):
                measured = chips.measured_peak_flops(device, dtype)
                text = (
                    f"{measured / 1e9:.1f} GFLOP/s"
                    if measured
                    else "unavailable (zhisuan.kernels._C not built)"
                )
                console.print(f"  measured peak {dtype} (FMA probe): {text}")
    table = Table(title="backends", header_style="bold")
    for column in ("op", "backend", "dtypes by device", "status"):
        table.add_column(column)
    for op in OPS:
        device_type = args.device.partition(":")[0] if args.device else None
        for name, status in kernels.backends(op, device_type).items():
            mark = "[green]available[/green]" if status.available else f"[yellow]{status.reason}[/yellow]"
            label = f"{name} (baseline)" if status.baseline else name
            dtypes = "\n".join(
                f"{device}: {','.join(names)}" for device, names in status.dtypes_by_device.items()
            )
            table.add_row(op, label, dtypes, mark)
    console.print(table)
    return 0


# ---- zhisuan run -------------------------------------------------------------------------------


def add_run_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "run",
        help="check and time kernels against the reference and the chip's peak",
        description="Check every available backend of each op against a float64 reference, "
        "then time it; prints achieved FLOP/s and percent of peak, and writes JSON Lines.",
    )
    add_selection_options(p)
    count = p.add_mutually_exclusive_group()
    count.add_argument(
        "--iters", type=positive_int, help="exactly this many timed samples per benchmark and round"
    )
    count.add_argument(
        "--time-budget", type=positive_float,
        help=f"seconds of timed samples per benchmark and round (default {precision.DEFAULT_BLOCK_S:g})",
    )  # fmt: skip
    p.add_argument("--no-flush", action="store_true", help="do not flush caches between samples (warm-cache)")
    p.add_argument(
        "--interleave",
        action="store_true",
        help="time the backends of each shape sample by sample in turn, so that all of them see the same "
        "load of a shared host (side-by-side comparisons)",
    )
    add_round_options(p)
    p.add_argument("--json", help="JSON Lines output (default: zhisuan-results/<run id>.jsonl)")
    p.add_argument("--csv", help="also export the results as CSV")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the random inputs")
    p.set_defaults(func=run_run)


def add_round_options(p) -> None:
    """A run is made of rounds, each a fresh process (zhisuan.bench.harness.rounds)."""
    p.add_argument(
        "--rounds", type=positive_int,
        help="exactly this many rounds (default: adaptive, until --precision is reached or --max-rounds)",
    )  # fmt: skip
    p.add_argument(
        "--max-rounds", type=positive_int, default=precision.MAX_ROUNDS,
        help=f"most rounds of adaptive sampling (default {precision.MAX_ROUNDS}; at least {precision.MIN_ROUNDS} are run)",
    )  # fmt: skip
    p.add_argument(
        "--precision", type=fraction_arg, default=precision.DEFAULT_PRECISION,
        help="stop sampling a benchmark once the 95%% interval of its time is this narrow, relative, each "
        f"way: e.g. 1.25%% or 0.0125 (default {100 * precision.DEFAULT_PRECISION:g}%%: an interval as wide as "
        "half the gate's default threshold)",
    )  # fmt: skip
    p.add_argument("--max-time", type=positive_float, help="wall-clock seconds after which no round begins")
    p.add_argument(
        "--in-process", action="store_true",
        help="run the rounds in this process instead of a fresh process each (faster start; process-level "
        "effects are then not sampled, and the results say so)",
    )  # fmt: skip


def fraction_arg(text: str) -> float:
    """'2.5%' or '0.025' -> 0.025: a fraction in (0, 1)."""
    from zhisuan.bench.gate.settings import parse_fraction

    try:
        return parse_fraction(text, "precision", zero_ok=False)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_selection_options(p) -> None:
    """What to time: ops, backends, shapes, dtypes, device (`zhisuan run` and `zhisuan ab`)."""
    p.add_argument(
        "ops", nargs="*", default=["matmul", "attention"], help="ops to run (default: matmul attention)"
    )
    p.add_argument(
        "--backend", type=parse_csv, help="comma-separated backends (default: every available one)"
    )
    shape = p.add_mutually_exclusive_group()
    shape.add_argument(
        "--shape", action="append", default=[], help="a shape, e.g. 1024x1024x1024; repeatable"
    )
    shape.add_argument("--suite", default=None, help="a named shape suite (default: 'default')")
    p.add_argument("--tokens", type=positive_int, help="M of the LLM suites' projections (tokens in flight)")
    p.add_argument("--causal", choices=("no", "yes", "both"), default="both", help="attention masks to run")
    p.add_argument(
        "--dtype", type=parse_csv, help="comma-separated dtypes (default: fp32 on CPU, bf16 on accelerators)"
    )
    p.add_argument(
        "--device",
        type=device_arg,
        default=None,
        help="cpu, cuda, cuda:1, npu:0, xpu, ... any device torch or a vendor plug-in knows "
        "(default: the accelerator if present, else cpu)",
    )


def run_run(args) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from zhisuan.bench.core import timing
    from zhisuan.bench.core.console import console, err_console
    from zhisuan.bench.core.result_files import ResultWriter, prepare_output, refuse_overwrite, write_csv
    from zhisuan.bench.core.results import new_run_id
    from zhisuan.bench.harness import rounds, runner
    from zhisuan.bench.harness.table import results_table
    from zhisuan.bench.workloads.suites import suite_names

    device = args.device or default_device()
    if args.suite is not None and args.suite not in suite_names():
        raise UsageError(f"unknown suite {args.suite!r}; suites: {', '.join(suite_names())}")
    causal = {"no": (False,), "yes": (True,), "both": (False, True)}[args.causal]
    shapes = runner.shapes_for(args.ops, device, args.suite, args.shape, causal, args.tokens)
    plan = runner.plan_run(args.ops, shapes, args.dtype, device, args.backend)
    for what, reason in plan.skipped:
        err_console.print(f"[yellow]skipped[/yellow] {what}: {reason}")
    if plan.total == 0:
        suite = f"suite {args.suite or 'default'}" if not args.shape else "the shapes given"
        why = [f"{suite} has no {op} shapes for {device}" for op in plan.without_shapes]
        why += ["no available backend for these ops/dtypes"] if plan.skipped else []
        err_console.print(f"zhisuan: nothing to run ({'; '.join(why)})")
        return EXIT_USAGE
    runner.check_memory(plan, args.interleave)  # here, in one line, not from inside a round's process
    run_id = new_run_id()
    path = Path(args.json or f"zhisuan-results/{run_id}.jsonl")
    round_plan = rounds.RoundPlan(
        rounds=args.rounds, max_rounds=max(args.max_rounds, rounds.MIN_ROUNDS), precision=args.precision,
        max_time_s=args.max_time, in_process=args.in_process,
    )  # fmt: skip
    if args.iters is None and args.time_budget is None:
        timing_plan = timing.TimingPlan(time_budget_s=rounds.DEFAULT_BLOCK_S)
    else:
        timing_plan = timing.TimingPlan(iters=args.iters, time_budget_s=args.time_budget)
    refuse_overwrite({"--json": path, "--csv": args.csv}, [])
    for option, target in (("--json", path), ("--csv", args.csv)):
        if target:
            prepare_output(target, option)  # before any work: a directory, a read-only place
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with ResultWriter(path) as writer, Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("starting", total=plan.total)

        def started(number, pending):
            bar.update(
                task, description=f"round {number} of at most {round_plan.most}: {pending} benchmark(s)"
            )

        def finished(result):
            writer.write(result)
            bar.advance(task)

        results = rounds.run(
            plan,
            round_plan,
            timing_plan=timing_plan,
            flush=not args.no_flush,
            seed=args.seed,
            on_result=finished,
            on_round=started,
            run_id=run_id,
            interleave=args.interleave,
        )
    title = f"zhisuan run {run_id} on {results[0].device_name}"
    console.print(results_table(results, title=title, width=console.width if console.is_terminal else None))
    for line in short_of_target(results):
        err_console.print(line, style="yellow")
    console.print(f"results: {path}")
    if args.csv:
        write_csv(results, args.csv)
        console.print(f"csv: {args.csv}")
    failed = [r for r in results if r.status != "ok"]
    return EXIT_FAILED if failed else EXIT_OK


def short_of_target(results) -> list[str]:
    """Say which benchmarks stopped sampling before their time was as precise as the target: the gate
    may not decide on them, and compare will say so again."""
    from zhisuan.bench.core.precision import sampling_of
    from zhisuan.bench.core.results import shape_label

    short = [
        (r, s) for r in results if r.status == "ok" and (s := sampling_of(r)).get("precision") is not None
        and s.get("target") and s["precision"] > s["target"]
    ]  # fmt: skip
    if not short:
        return []
    lines = [
        f"{len(short)} benchmark(s) stopped short of the precision target; a gate may not decide on them:"
    ]
    for r, s in short:
        lines.append(
            f"  {r.op} {r.backend} {shape_label(r.shape)} {r.dtype}: +-{s['precision']:.1%} after "
            f"{len(s.get('round_sizes') or [])} rounds ({s.get('stop')}), target +-{s['target']:.1%}"
        )
    lines.append("  more rounds (--max-rounds) or a quieter host would narrow them")
    return lines
