"""`zhisuan history`: keep results in a SQLite file, pin baselines, show trends, gate against history.

    zhisuan history add RESULTS... [--branch B]     store runs (JSON Lines, pytest-benchmark JSON, dirs)
    zhisuan history runs [--branch B]               list stored runs: commit, branch, device, results
    zhisuan history baseline set NAME [RUN]         pin a run (default: the latest) as NAME
    zhisuan history baseline list
    zhisuan history show [PATTERN]                  trend of one benchmark, commit per run (no pattern: list them)
    zhisuan history plot PATTERN --out trend.png    the trend as a PNG: commits on the x-axis, regressions marked
    zhisuan history html --out trends.html          every trend on one self-contained HTML page
    zhisuan history compare CURRENT --baseline NAME | --last N [--branch B] | --commit A
    zhisuan history compare --commit A --commit B   every run of commit A against every run of B

PATTERN is a glob on 'op/backend/shape/dtype', e.g. 'matmul/cpp/M=1024,*'.
A run's branch: --branch, else `git_branch` in its results, else the branch checked out here when
it is at the run's commit. The database: --db, else $ZHISUAN_HISTORY_DB, else ~/.zhisuan/history.db.
"""

from __future__ import annotations

import argparse
from datetime import datetime

from zhisuan.bench.cli import positive_int
from zhisuan.bench.core.errors import UsageError
from zhisuan.bench.core.result_files import read_results
from zhisuan.bench.gate import decision, history_compare, run_spread
from zhisuan.bench.gate import trend as trends
from zhisuan.bench.gate.commits import read_checkout
from zhisuan.bench.gate.compare_command import threshold_arg
from zhisuan.bench.gate.history import History, label
from zhisuan.bench.gate.settings import load_settings


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
    add.add_argument("--branch", help="the branch the runs belong to (default: from the results or git)")
    add.set_defaults(func=run_add)

    runs = sub.add_parser("runs", parents=[common], help="list stored runs")
    runs.add_argument("--branch", help="only the runs of this branch")
    runs.set_defaults(func=run_runs)

    base = sub.add_parser("baseline", help="pin or list baselines")
    base_sub = base.add_subparsers(dest="baseline_command", metavar="ACTION", required=True)
    set_ = base_sub.add_parser("set", parents=[common], help="pin a run as a named baseline")
    set_.add_argument("name", help="baseline name, e.g. main")
    set_.add_argument("run", nargs="?", help="run id or a unique prefix (default: the latest run)")
    set_.set_defaults(func=run_baseline_set)
    list_ = base_sub.add_parser("list", parents=[common], help="list pinned baselines")
    list_.set_defaults(func=run_baseline_list)

    trend_options = argparse.ArgumentParser(add_help=False)
    trend_options.add_argument("--device", default="*", help="glob on the device name")
    trend_options.add_argument("--branch", help="only the runs of this branch")
    trend_options.add_argument(
        "--baseline", help="judge each run against this pinned baseline (default: the runs before it)"
    )
    trend_options.add_argument(
        "--window", type=positive_int, default=trends.DEFAULT_WINDOW, metavar="N",
        help=f"judge each run against the N runs before it (default {trends.DEFAULT_WINDOW})",
    )  # fmt: skip
    trend_options.add_argument(
        "--threshold",
        type=threshold_arg,
        default=decision.DEFAULT_THRESHOLD,
        help="as in compare (default 5%%)",
    )
    trend_options.add_argument("--thresholds", metavar="TOML", help="per-benchmark thresholds, as in compare")

    show = sub.add_parser(
        "show", parents=[common, trend_options], help="trend of one benchmark (no pattern: list benchmarks)"
    )
    show.add_argument("pattern", nargs="?", help="glob on op/backend/shape/dtype")
    show.set_defaults(func=run_show)

    plot = sub.add_parser("plot", parents=[common, trend_options], help="trend plot (PNG) of one benchmark")
    plot.add_argument("pattern", help="glob on op/backend/shape/dtype")
    plot.add_argument("--out", required=True, help="PNG file to write")
    plot.set_defaults(func=run_plot)

    html = sub.add_parser(
        "html", parents=[common, trend_options], help="every trend on one self-contained HTML page"
    )
    html.add_argument("pattern", nargs="?", default="*", help="glob on op/backend/shape/dtype (default: all)")
    html.add_argument("--out", required=True, help="HTML file to write")
    html.add_argument("--title", default="zhisuan performance trends", help="the page's title")
    html.set_defaults(func=run_html)

    cmp = sub.add_parser(
        "compare", parents=[common],
        help="gate results against a pinned run, the last N runs of a branch, or a commit",
        description=history_compare.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    history_compare.add_arguments(cmp)
    cmp.set_defaults(func=history_compare.run)


NO_CHART = "no run with a timing to draw: every run failed, ran interpreted or kept fewer than 2 samples"


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def _short(sha: str | None) -> str:
    return ",".join(s[:10] for s in sha.split(",")) if sha else "-"


def run_add(args) -> int:
    from zhisuan.bench.core.console import console, safe

    results = read_results(args.paths)
    checkout = None if args.branch else read_checkout()
    with History(args.db) as history:
        for added in history.add(results, source=args.source, branch=args.branch, checkout=checkout):
            extra = f", {added.already_present} already present" if added.already_present else ""
            console.print(
                f"run {safe(added.run_id)}: {added.added} result(s) added{extra}, branch {safe(added.branch or '-')}"
            )
        console.print(f"history: {safe(history.path)}")
    return 0


def run_runs(args) -> int:
    from rich.table import Table

    from zhisuan.bench.core.console import console, safe

    with History(args.db) as history:
        runs, baselines = history.runs(branch=args.branch), history.baselines()
    pinned = {}
    for name, run_id in baselines.items():
        pinned.setdefault(run_id, []).append(name)
    table = Table(title="runs", header_style="bold")
    for column in ("run", "measured", "commit", "branch", "device", "results", "baselines", "source"):
        table.add_column(column)
    for r in runs:
        table.add_row(safe(r.run_id), _when(r.timestamp), _short(r.git_sha), safe(r.branch or "-"),
                      safe(", ".join(map(str, r.device_names))), str(r.n_results),
                      safe(", ".join(pinned.get(r.run_id, []))), safe(r.source or ""))  # fmt: skip
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


def _settings(args):
    return load_settings(args.thresholds, args.threshold)


def _pinned(history: History, name: str | None, results):
    """The pinned baseline's result for the benchmark of `results` (None without --baseline)."""
    if name is None:
        return None
    first = results[0]
    for r in history.resolve(name):
        if r.device_name == first.device_name and label(r) == label(first):
            return r
    raise UsageError(f"baseline {name!r} has no result for {label(first)} on {first.device_name}")


def _judged_against(args) -> str:
    if args.baseline:
        return f"Each run judged against the pinned baseline {args.baseline!r}."
    return (
        f"Each run judged against the {args.window} timed run(s) before it: "
        "the within-run test against their median run, their spread as the noise floor, as "
        f"zhisuan history compare --last {args.window} judges."
    )


def _trend(args):
    """(points, baseline result or None, title, run id -> branch) for the benchmark named by args.pattern."""
    with History(args.db) as history:
        results = history.trend(args.pattern, args.device, args.branch)
        baseline = _pinned(history, args.baseline, results)
        branches = {r.run_id: r.branch for r in history.runs()}
    title = f"{label(results[0])} on {results[0].device_name}"
    points = trends.judge(results, _settings(args), baseline, args.window)
    return points, baseline, title, branches


def run_show(args) -> int:
    from rich.table import Table

    from zhisuan.bench.core import units
    from zhisuan.bench.core.console import console, safe
    from zhisuan.bench.core.stats import summarize

    if args.pattern is None:
        with History(args.db) as history:
            labels = history.labels("*", args.device, args.branch)
        if not labels:
            console.print("history is empty (zhisuan history add RESULTS)")
        for lab, dev in labels:
            console.print(f"{safe(lab)}  [dim]on {safe(dev)}[/dim]")
        return 0
    points, baseline, title, branches = _trend(args)
    against = f"baseline {args.baseline}" if baseline is not None else f"the {args.window} run(s) before it"
    table = Table(title=f"{safe(title)} (each run vs {safe(against)})", header_style="bold")
    for column in ("run", "measured", "commit", "branch", "samples", "median", "IQR", "change", "verdict"):
        table.add_column(column)
    for p in points:
        r = p.result
        change = f"{(p.ratio - 1) * 100:+.1f}%" if p.ratio is not None else ""
        verdict = p.verdict or ("" if r.status == "ok" else f"[red]{safe(r.status)}[/red]")
        if p.verdict == "regressed":
            verdict = "[bold red]regressed[/bold red]"
        if p.note:
            verdict += f" [dim]({safe(p.note)})[/dim]"
        table.add_row(safe(r.run_id), _when(r.timestamp), _short(p.commit), safe(branches.get(r.run_id) or "-"),
                      str(len(r.samples_s)), units.duration(r.median_s),
                      units.duration(summarize(r.samples_s).iqr_s if r.samples_s else None), change, verdict)  # fmt: skip
    console.print(table)
    return 0


def run_plot(args) -> int:
    from zhisuan.bench.core.console import console, safe
    from zhisuan.bench.core.result_files import refuse_overwrite
    from zhisuan.bench.gate.history import default_path
    from zhisuan.bench.gate.trend_chart import trend_figure
    from zhisuan.bench.report.output import prepare_target
    from zhisuan.bench.report.plots import to_png

    refuse_overwrite({"--out": args.out}, [args.db or default_path()])
    path = prepare_target(args.out, "--out")
    points, baseline, title, _ = _trend(args)
    figure = trend_figure(points, title, baseline.median_s if baseline else None, args.baseline)
    path.write_bytes(to_png(figure))
    regressions = sum(p.verdict == "regressed" for p in points)
    console.print(f"trend plot: {safe(path)} ({len(points)} runs, {regressions} regression(s) marked)")
    return 0


def run_html(args) -> int:
    from zhisuan.bench.core.console import console, safe
    from zhisuan.bench.core.result_files import refuse_overwrite
    from zhisuan.bench.gate.history import default_path
    from zhisuan.bench.gate.trend_chart import trend_figure
    from zhisuan.bench.gate.trend_page import Trend, render
    from zhisuan.bench.report.output import prepare_target
    from zhisuan.bench.report.plots import to_png

    refuse_overwrite({"--out": args.out}, [args.db or default_path()])
    path = prepare_target(args.out, "--out")
    settings, page = _settings(args), []
    with History(args.db) as history:
        matches = history.labels(args.pattern, args.device, args.branch)
        if not matches:
            raise UsageError(f"history {history.path}: no benchmark matches {args.pattern!r} to draw")
        runs = history.runs(branch=args.branch)
        branches = {r.run_id: r.branch for r in runs}
        for lab, device in matches:
            results = history.series(lab, device, args.branch)
            baseline = _pinned(history, args.baseline, results)
            points = trends.judge(results, settings, baseline, args.window)
            if not any(run_spread.timed(p.result) for p in points):
                page.append(Trend(lab, device, points, branches, None, NO_CHART))
                continue
            figure = trend_figure(points, f"{lab} on {device}", baseline.median_s if baseline else None,
                                  args.baseline)  # fmt: skip
            page.append(Trend(lab, device, points, branches, to_png(figure)))
        where = str(history.path)
    facts = [where, f"{len(runs)} runs", f"{len(page)} benchmarks"]
    facts += [f"branch {args.branch}"] if args.branch else []
    facts += [f"generated {datetime.now():%Y-%m-%d %H:%M}"]
    path.write_text(render(page, title=args.title, facts=facts, judged_against=_judged_against(args)),
                    encoding="utf-8")  # fmt: skip
    regressed = sum(trends.latest_verdict(t.points) == "regressed" for t in page)
    console.print(
        f"trends page: {safe(path)} ({len(page)} benchmarks, {regressed} regressed in their latest run)"
    )
    return 0
