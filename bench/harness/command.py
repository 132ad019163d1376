"""`zhisuan info` (devices, peak figures and their sources, backends) and `zhisuan run` (check and time
kernels, print the table, write every result as it arrives)."""

from __future__ import annotations

from pathlib import Path

from zhisuan.bench.cli import default_device, device_arg, parse_csv, positive_float, positive_int, seed_arg
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
    count = p.add_mutually_exclusive_group()
    count.add_argument("--iters", type=positive_int, help="exactly this many timed samples per benchmark")
    count.add_argument("--time-budget", type=positive_float, help="seconds of timed samples per benchmark")
    p.add_argument("--no-flush", action="store_true", help="do not flush caches between samples (warm-cache)")
    p.add_argument(
        "--interleave",
        action="store_true",
        help="time the backends of each shape sample by sample in turn, so that all of them see the same "
        "load of a shared host (side-by-side comparisons)",
    )
    p.add_argument("--json", help="JSON Lines output (default: zhisuan-results/<run id>.jsonl)")
    p.add_argument("--csv", help="also export the results as CSV")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the random inputs")
    p.set_defaults(func=run_run)


def run_run(args) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from zhisuan.bench.core import timing
    from zhisuan.bench.core.console import console, err_console
    from zhisuan.bench.core.result_files import ResultWriter, prepare_output, refuse_overwrite, write_csv
    from zhisuan.bench.core.results import new_run_id, short_shape
    from zhisuan.bench.harness import runner
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
    run_id = new_run_id()
    path = Path(args.json or f"zhisuan-results/{run_id}.jsonl")
    refuse_overwrite({"--json": path, "--csv": args.csv}, [])
    for option, target in (("--json", path), ("--csv", args.csv)):
        if target:
            prepare_output(target, option)  # before any work: a directory, a read-only place
    results = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with ResultWriter(path) as writer, Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("starting", total=plan.total)

        def started(case, backend):
            bar.update(task, description=f"{case.op} {backend.name} {short_shape(case.op, case.shape)}")

        def finished(result):
            writer.write(result)
            results.append(result)
            bar.advance(task)

        runner.execute(
            plan,
            timing_plan=timing.TimingPlan(iters=args.iters, time_budget_s=args.time_budget),
            flush=not args.no_flush,
            seed=args.seed,
            on_result=finished,
            on_start=started,
            run_id=run_id,
            interleave=args.interleave,
        )
    title = f"zhisuan run {run_id} on {results[0].device_name}"
    console.print(results_table(results, title=title, width=console.width if console.is_terminal else None))
    console.print(f"results: {path}")
    if args.csv:
        write_csv(results, args.csv)
        console.print(f"csv: {args.csv}")
    failed = [r for r in results if r.status != "ok"]
    return EXIT_FAILED if failed else EXIT_OK
