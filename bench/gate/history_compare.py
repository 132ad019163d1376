"""`zhisuan history compare`: the gate against the history: a pinned run, a branch, or a commit.

    zhisuan history compare CURRENT --baseline NAME          a pinned run
    zhisuan history compare CURRENT --last N [--branch B]    the last N runs (of branch B)
    zhisuan history compare CURRENT --commit A               every run of commit A
    zhisuan history compare --commit A --commit B            every run of A (baseline) vs every run of B
    zhisuan history compare --commit B --last N --branch main

CURRENT is a results file (or directory, or history: reference); without it the current side is
the last --commit. A side made of several runs is compared through its median run per benchmark
(comparison.run_gate: the within-run test), and when the baseline has several runs, the spread of
their medians is the noise floor (run_spread.apply). Outputs (terminal, --markdown, --junit) and
exit codes are those of `zhisuan compare` (gate/formats.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from zhisuan.bench.cli import positive_int, safe_line
from zhisuan.bench.core.errors import UsageError
from zhisuan.bench.core.markdown import escape
from zhisuan.bench.core.results import Result
from zhisuan.bench.gate import compare_command, comparison, formats, run_spread, sources
from zhisuan.bench.gate.commits import read_checkout
from zhisuan.bench.gate.history import History
from zhisuan.bench.gate.settings import load_settings


def add_arguments(p) -> None:
    p.add_argument(
        "current", nargs="?", help="current results (file, directory or history reference); "
        "without it, the last --commit is the current side",
    )  # fmt: skip
    p.add_argument("--baseline", metavar="NAME", help="baseline: a pinned run")
    p.add_argument("--last", type=positive_int, metavar="N", help="baseline: the last N runs (see --branch)")
    p.add_argument("--branch", help="with --last: the last N runs of this branch")
    p.add_argument(
        "--commit", action="append", metavar="SHA",
        help="a commit (short or full SHA; all its runs): the baseline, or twice: baseline then current",
    )  # fmt: skip
    p.add_argument("--add", action="store_true", help="store CURRENT in the history after comparing")
    compare_command.add_gate_options(p)


@dataclass
class Side:
    results: list[Result]  # every result of every run of this side
    description: str

    @property
    def n_runs(self) -> int:
        return len({r.run_id for r in self.results}) or 1


def _commits(args) -> tuple[str | None, str | None]:
    """(baseline commit, current commit) from --commit, checked against CURRENT and the other options."""
    commits = args.commit or []
    if len(commits) > 2:
        raise UsageError(f"--commit given {len(commits)} times; at most twice (baseline, then current)")
    if args.current is not None:
        if len(commits) == 2:
            raise UsageError("with CURRENT, give at most one --commit (the baseline)")
        return (commits[0] if commits else None), None
    if not commits:
        raise UsageError("give the current results: a file (CURRENT) or --commit SHA")
    return (commits[0] if len(commits) == 2 else None), commits[-1]


def _check_baseline_choice(args, baseline_commit: str | None) -> None:
    chosen = [name for name, value in (("--commit", baseline_commit), ("--baseline", args.baseline),
                                       ("--last", args.last)) if value is not None]  # fmt: skip
    if not chosen:
        raise UsageError(
            "say what to compare against: --baseline NAME, --last N [--branch B] or --commit SHA"
        )
    if len(chosen) > 1:
        raise UsageError(f"give one baseline, not {' and '.join(chosen)}")
    if args.branch is not None and args.last is None:
        raise UsageError("--branch needs --last N (the baseline is the last N runs of the branch)")
    if args.add and args.current is None:
        raise UsageError("--add stores CURRENT, a results file; the runs of a commit are stored already")


def _runs(n: int) -> str:
    return f"{n} run{'s' if n != 1 else ''}"


def load_sides(args, history: History) -> tuple[Side, Side]:
    """(baseline, current) as the arguments name them."""
    baseline_commit, current_commit = _commits(args)
    _check_baseline_choice(args, baseline_commit)
    if current_commit is not None:
        runs = history.runs_of_commit(current_commit)
        current = Side(history.results_of(runs), f"commit {current_commit}")
    else:
        current = Side(sources.load(args.current, db=args.db), args.current)
    devices = {r.device_name for r in current.results}
    exclude = {r.run_id for r in current.results if r.run_id}
    if baseline_commit is not None:
        runs = history.runs_of_commit(baseline_commit, devices, exclude)
        baseline = Side(history.results_of(runs), f"commit {baseline_commit}")
    elif args.baseline is not None:
        baseline = Side(history.resolve(args.baseline), f"baseline {args.baseline}")
    else:
        runs = history.last_runs(args.last, args.branch, devices, exclude)
        of = f" of branch {args.branch}" if args.branch is not None else ""
        baseline = Side(history.results_of(runs), f"the last runs{of}")
    return baseline, current


def run(args) -> int:
    compare_command.check_outputs(args, [args.current])
    settings = load_settings(args.thresholds, args.threshold, args.alpha)
    with History(args.db) as history:
        baseline, current = load_sides(args, history)
    report = comparison.run_gate(
        run_spread.representatives(baseline.results, current=False),
        run_spread.representatives(current.results, current=True),
        settings,
        allow_env_mismatch=args.allow_env_mismatch,
        allow_missing=args.allow_missing,
    )
    softened = run_spread.apply(report, baseline.results)
    sides = (
        f"baseline: {baseline.description} ({_runs(baseline.n_runs)}); "
        f"current: {current.description} ({_runs(current.n_runs)})"
    )
    most = max((len(m) for m in run_spread.run_medians(baseline.results).values()), default=0)
    spread = (
        f"noise floor: per benchmark, the spread of its baseline runs' medians (up to {most}), widened by the "
        f"threshold; {len(softened)} within-run verdict(s) inside it made noisy"
        if most > 1
        else "noise floor: none (one baseline run per benchmark)"
    )
    code = emit(report, args, [sides, spread])
    if args.add:
        with History(args.db) as history:
            history.add(current.results, checkout=read_checkout())
    return code


def emit(report: comparison.GateReport, args, lines: list[str]) -> int:
    """Print and write the report as `zhisuan compare` does, with `lines` (what was compared, the
    noise floor) after the settings; the exit code."""
    from zhisuan.bench.core.console import console, safe

    console.print(safe(lines[0]))
    if report.pairs or report.new or report.missing or report.unmatched:
        console.print(formats.rich_table(report))
    notes = (report.env.describe() if report.allow_env_mismatch else []) + report.env.describe_notes()
    if notes:
        console.print("environment differences: " + "; ".join(notes))
    for line in [formats.settings_line(report), *lines[1:]]:
        console.print(safe(line), style="dim")
    if args.markdown:
        extra = "".join(f"<sub>{escape(line)}</sub>\n\n" for line in lines)
        formats.write_text(args.markdown, formats.markdown(report) + "\n" + extra)
    if args.junit:
        formats.write_text(args.junit, formats.junit(report))
    for problem in report.problems:
        print(f"zhisuan history compare: cannot compare: {safe_line(problem)}", file=sys.stderr)
    style = {0: "bold green", 1: "bold red", 2: "bold yellow"}[report.exit_code]
    console.print(formats.summary_line(report), style=style)
    return report.exit_code
