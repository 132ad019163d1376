"""`zhisuan history`: keep results in a SQLite file, pin baselines, show trends, gate against history.

    zhisuan history add RESULTS...                  store runs (JSON Lines, pytest-benchmark JSON, dirs)
    zhisuan history runs                            list stored runs
    zhisuan history baseline set NAME [RUN]         pin a run (default: the latest) as NAME
    zhisuan history baseline list
    zhisuan history show [PATTERN]                  trend of one benchmark (no pattern: list them)
    zhisuan history plot PATTERN --out trend.png    the trend as a PNG, regressions marked
    zhisuan history compare CURRENT --baseline NAME | --last N

PATTERN is a glob on 'op/backend/shape/dtype', e.g. 'matmul/cpp/M=1024,*'.
The database: --db, else $ZHISUAN_HISTORY_DB, else ~/.zhisuan/history.db.
"""

from __future__ import annotations

import argparse
from datetime import datetime

from zhisuan.bench.cli import positive_int
from zhisuan.bench.core.errors import UsageError
from zhisuan.bench.core.result_files import read_results
from zhisuan.bench.gate import compare_command, sources
from zhisuan.bench.gate.history import History, label


def add_parser(subparsers) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db", help="history database (default: $ZHISUAN_HISTORY_DB or ~/.zhisuan/history.db)"
    )
    p = subparsers.add_parser(
        "history", help="results history in SQLite: add, baselines, trends, compare", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    sub = p.add_subparsers(dest="history_command", metavar="ACTION", required=True)

    add = sub.add_parser(
        "add", parents=[common], help="store result files (JSON Lines, pytest-benchmark JSON, dirs)"
    )
    add.add_argument("paths", nargs="+", help="result files or directories")
    add.add_argument("--source", help="where the runs came from (CI job URL, node name)")
    add.set_defaults(func=run_add)

    runs = sub.add_parser("runs", parents=[common], help="list stored runs")
    runs.set_defaults(func=run_runs)

    base = sub.add_parser("baseline", help="pin or list baselines")
    base_sub = base.add_subparsers(dest="baseline_command", metavar="ACTION", required=True)
    set_ = base_sub.add_parser("set", parents=[common], help="pin a run as a named baseline")
    set_.add_argument("name", help="baseline name, e.g. main")
    set_.add_argument("run", nargs="?", help="run id or a unique prefix (default: the latest run)")
    set_.set_defaults(func=run_baseline_set)
    list_ = base_sub.add_parser("list", parents=[common], help="list pinned baselines")
    list_.set_defaults(func=run_baseline_list)

    show = sub.add_parser(
        "show", parents=[common], help="trend of one benchmark (no pattern: list benchmarks)"
    )
    show.add_argument("pattern", nargs="?", help="glob on op/backend/shape/dtype")
    show.add_argument("--device", default="*", help="glob on the device name")
    show.add_argument(
        "--baseline", help="judge each run against this pinned baseline (default: previous run)"
    )
    show.set_defaults(func=run_show)

    plot = sub.add_parser("plot", parents=[common], help="trend plot (PNG) of one benchmark")
    plot.add_argument("pattern", help="glob on op/backend/shape/dtype")
    plot.add_argument("--device", default="*", help="glob on the device name")
    plot.add_argument(
        "--baseline", help="judge each run against this pinned baseline (default: previous run)"
    )
    plot.add_argument("--out", required=True, help="PNG file to write")
    plot.set_defaults(func=run_plot)

    cmp = sub.add_parser(
        "compare",
        parents=[common],
        help="gate CURRENT against a pinned baseline or the median of the last N runs",
    )
    cmp.add_argument("current", help="current results (file, directory or history reference)")
    which = cmp.add_mutually_exclusive_group(required=True)
    which.add_argument("--baseline", help="a pinned baseline name")
    which.add_argument("--last", type=positive_int, metavar="N", help="the median run of the last N runs")
    cmp.add_argument("--add", action="store_true", help="store CURRENT in the history after comparing")
    compare_command.add_gate_options(cmp)
    cmp.set_defaults(func=run_compare)


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def run_add(args) -> int:
    from zhisuan.bench.core.console import console, safe

    results = read_results(args.paths)
    with History(args.db) as history:
        for added in history.add(results, source=args.source):
            extra = f", {added.already_present} already present" if added.already_present else ""
            console.print(f"run {safe(added.run_id)}: {added.added} result(s) added{extra}")
        console.print(f"history: {safe(history.path)}")
    return 0


def run_runs(args) -> int:
    from rich.table import Table

    from zhisuan.bench.core.console import console, safe

    with History(args.db) as history:
        runs, baselines = history.runs(), history.baselines()
    pinned = {}
    for name, run_id in baselines.items():
        pinned.setdefault(run_id, []).append(name)
    table = Table(title="runs", header_style="bold")
    for column in ("run", "measured", "device", "git", "results", "baselines", "source"):
        table.add_column(column)
    for r in runs:
        table.add_row(safe(r.run_id), _when(r.timestamp), safe(", ".join(map(str, r.device_names))),
                      safe(r.git_sha or "-"), str(r.n_results), safe(", ".join(pinned.get(r.run_id, []))),
                      safe(r.source or ""))  # fmt: skip
    console.print(table)
    return 0


def run_baseline_set(args) -> int:
    from zhisuan.bench.core.console import console, safe

    with History(args.db) as history:
        run_id = history.set_baseline(args.name, args.run)
    console.print(f"baseline {safe(repr(args.name))} -> run {safe(run_id)}")
    return 0


def run_baseline_list(args) -> int:
    from zhisuan.bench.core.console import console, safe

    with History(args.db) as history:
        baselines = history.baselines()
    if not baselines:
        console.print("no baselines pinned (zhisuan history baseline set NAME [RUN])")
    for name, run_id in baselines.items():
        console.print(f"{safe(name)}: {safe(run_id)}")
    return 0


def _trend(args):
    """(points, baseline result or None, title) for the benchmark named by args.pattern."""
    from zhisuan.bench.gate import trend
    from zhisuan.bench.gate.settings import GateSettings

    with History(args.db) as history:
        results = history.trend(args.pattern, args.device)
        baseline = None
        if args.baseline:
            pinned = {
                label(r): r for r in history.resolve(args.baseline) if r.device_name == results[0].device_name
            }
            baseline = pinned.get(label(results[0]))
            if baseline is None:
                raise UsageError(f"baseline {args.baseline!r} has no result for {label(results[0])}")
    title = f"{label(results[0])} on {results[0].device_name}"
    return trend.judge(results, GateSettings(), baseline), baseline, title


def run_show(args) -> int:
    from rich.table import Table

    from zhisuan.bench.core import units
    from zhisuan.bench.core.console import console, safe
    from zhisuan.bench.core.stats import summarize

    if args.pattern is None:
        with History(args.db) as history:
            labels = history.labels("*", args.device)
        if not labels:
            console.print("history is empty (zhisuan history add RESULTS)")
        for lab, dev in labels:
            console.print(f"{safe(lab)}  [dim]on {safe(dev)}[/dim]")
        return 0
    points, baseline, title = _trend(args)
    against = f"baseline {args.baseline}" if baseline is not None else "previous run"
    table = Table(title=f"{safe(title)} (each run vs {safe(against)})", header_style="bold")
    for column in ("run", "measured", "git", "samples", "median", "IQR", "change", "verdict"):
        table.add_column(column)
    for p in points:
        r = p.result
        change = f"{(p.ratio - 1) * 100:+.1f}%" if p.ratio is not None else ""
        verdict = p.verdict or ("" if r.status == "ok" else f"[red]{safe(r.status)}[/red]")
        if p.verdict == "regressed":
            verdict = "[bold red]regressed[/bold red]"
        table.add_row(safe(r.run_id), _when(r.timestamp), safe(r.env.get("git_sha") or "-"), str(len(r.samples_s)),
                      units.duration(r.median_s), units.duration(summarize(r.samples_s).iqr_s if r.samples_s else None),
                      change, verdict)  # fmt: skip
    console.print(table)
    return 0


def run_plot(args) -> int:
    from zhisuan.bench.core.console import console, safe
    from zhisuan.bench.core.result_files import prepare_output, refuse_overwrite
    from zhisuan.bench.gate import trend
    from zhisuan.bench.gate.history import default_path

    refuse_overwrite({"--out": args.out}, [args.db or default_path()])
    prepare_output(args.out, "--out")
    points, baseline, title = _trend(args)
    path = trend.plot(points, args.out, title, baseline, args.baseline)
    regressions = sum(p.verdict == "regressed" for p in points)
    console.print(f"trend plot: {safe(path)} ({len(points)} runs, {regressions} regression(s) marked)")
    return 0


def run_compare(args) -> int:
    compare_command.check_outputs(args, [args.current])
    current = sources.load(args.current, db=args.db)
    with History(args.db) as history:
        devices = {r.device_name for r in current}
        exclude = {r.run_id for r in current if r.run_id}
        if args.baseline:
            baseline = history.resolve(args.baseline)
        else:
            baseline = history.median_of_last(args.last, devices, exclude)
    code = compare_command.report_and_exit(baseline, current, args)
    if args.add:
        with History(args.db) as history:
            history.add(current)
    return code
