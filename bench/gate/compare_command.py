"""`zhisuan compare BASELINE CURRENT`: the CI performance-regression gate.

Exit 0: no regression; 1: a benchmark regressed; 2: cannot compare (bad input, a failed current
run, missing benchmarks, a different chip or environment).
"""

from __future__ import annotations

import argparse
import sys

from zhisuan.bench.cli import safe_line
from zhisuan.bench.gate import comparison, decision, formats, sources
from zhisuan.bench.gate.settings import load_settings, parse_alpha, parse_threshold


def threshold_arg(text: str) -> float:
    try:
        return parse_threshold(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def alpha_arg(text: str) -> float:
    try:
        return parse_alpha(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_gate_options(p) -> None:
    """Options shared by `zhisuan compare` and `zhisuan history compare`."""
    p.add_argument(
        "--threshold", type=threshold_arg, default=decision.DEFAULT_THRESHOLD,
        help="slowdown that counts as a regression, e.g. 5%% or 0.05 (default 5%%)",
    )  # fmt: skip
    p.add_argument(
        "--alpha", type=alpha_arg, default=decision.DEFAULT_ALPHA,
        help="significance level of the one-sided t-test over rounds (default 0.01)",
    )  # fmt: skip
    p.add_argument("--thresholds", metavar="TOML", help="per-benchmark thresholds (see docs/ci-gate.md)")
    p.add_argument(
        "--allow-env-mismatch", action="store_true",
        help="compare even if chip, driver, torch/triton/CUDA versions, threads or clocks differ",
    )  # fmt: skip
    p.add_argument(
        "--allow-missing", action="store_true",
        help="do not fail when baseline benchmarks are absent from the current run",
    )  # fmt: skip
    p.add_argument("--markdown", metavar="FILE", help="also write the report as Markdown (a PR comment)")
    p.add_argument("--junit", metavar="FILE", help="also write JUnit XML (each benchmark a test case)")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "compare",
        help="the regression gate: compare two sets of results, noise-aware",
        description="Compare CURRENT against BASELINE benchmark by benchmark, over the rounds of each run "
        "(fresh processes): the ratio of their times beyond the shift all benchmarks share (the host's), its "
        "interval and a one-sided t-test, with a run-to-run noise floor learned across the benchmarks. Each is "
        "a results file (JSON Lines "
        "or pytest-benchmark JSON), a directory of them, or history:NAME, history:last, "
        "history:median/N, history:run/ID. Exit 0: no regression, 1: regression, 2: cannot compare.",
    )
    p.add_argument("baseline", help="baseline results: file, directory or history reference")
    p.add_argument("current", help="current results: file, directory or history reference")
    p.add_argument("--db", help="history database for history: references (default $ZHISUAN_HISTORY_DB)")
    add_gate_options(p)
    p.set_defaults(func=run)


def check_outputs(args, inputs: list[str]) -> None:
    """Refuse, before any work, output files that are inputs, the same file twice, or unwritable."""
    from zhisuan.bench.core.result_files import prepare_output, refuse_overwrite

    given = [path for path in inputs if path and not path.startswith(sources.HISTORY_PREFIX)]
    db = getattr(args, "db", None)
    refuse_overwrite({"--markdown": args.markdown, "--junit": args.junit},
                     given + [p for p in (args.thresholds, db) if p])  # fmt: skip
    for option, path in (("--markdown", args.markdown), ("--junit", args.junit)):
        if path:
            prepare_output(path, option)


def run(args) -> int:
    check_outputs(args, [args.baseline, args.current])
    current = sources.load(args.current, db=args.db)
    baseline = sources.load(
        args.baseline,
        db=args.db,
        device_names={r.device_name for r in current},
        exclude_runs={r.run_id for r in current if r.run_id},
    )
    return report_and_exit(baseline, current, args)


def report_and_exit(baseline, current, args) -> int:
    """Run the gate, print the table and the verdict, write the requested files; the exit code."""
    report = comparison.run_gate(
        baseline,
        current,
        load_settings(args.thresholds, args.threshold, args.alpha),
        allow_env_mismatch=args.allow_env_mismatch,
        allow_missing=args.allow_missing,
    )
    return show(report, args, "zhisuan compare")


def show(report: comparison.GateReport, args, command: str) -> int:
    """Print a gate report (table, noise, environment, verdict), write --markdown/--junit; the exit code."""
    from zhisuan.bench.core.console import console

    if report.pairs or report.new or report.missing or report.unmatched:
        console.print(formats.rich_table(report, title=command))
    if report.duplicates_dropped:
        console.print(
            f"{report.duplicates_dropped} older duplicate result(s) ignored (the latest of each is used)"
        )
    for line in formats.note_lines(report):
        console.print(line, markup=False)
    for line in formats.noise_lines(report):
        console.print(line, style="yellow")
    notes = report.env.describe_notes()
    if report.env.blocks and args.allow_env_mismatch:
        notes = report.env.describe() + notes
    if notes:
        console.print("environment differences: " + "; ".join(notes))
    console.print(formats.settings_line(report), style="dim")
    if args.markdown:
        formats.write_text(args.markdown, formats.markdown(report, title=command))
    if args.junit:
        formats.write_text(args.junit, formats.junit(report, title=command))
    for problem in report.problems:
        print(f"{command}: cannot compare: {safe_line(problem)}", file=sys.stderr)  # it quotes file content
    style = {0: "bold green", 1: "bold red", 2: "bold yellow"}[report.exit_code]
    console.print(formats.summary_line(report), style=style)
    return report.exit_code
