"""The gate's report three ways: a rich table (terminal), Markdown (a PR comment), JUnit XML (CI).

Names, devices and reasons come from result files: each is escaped for where it lands (console.safe
for the terminal, core/markdown for Markdown, and XML-invalid characters replaced in JUnit).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from rich.table import Table

from zhisuan.bench.core import units
from zhisuan.bench.core.console import safe
from zhisuan.bench.core.errors import UsageError
from zhisuan.bench.core.markdown import Markup, bold, code, escape, table
from zhisuan.bench.core.results import Result
from zhisuan.bench.gate import decision
from zhisuan.bench.gate.comparison import GateReport, Pair, busy_host, describe

VERDICT_STYLE = {
    decision.REGRESSED: "bold red",
    decision.IMPROVED: "green",
    decision.UNCHANGED: "dim",
    decision.UNDECIDED: "yellow",
}


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f}%"


def _ci(p: Pair) -> str:
    if not (math.isfinite(p.ci_high) and p.ci_low > 0):
        return "unknown"
    return f"{_pct(p.ci_low)} .. {_pct(p.ci_high)}"


def _p_value(p: Pair) -> str:
    value = p.p_faster if p.ratio < 1 else p.p_slower
    return f"{value:.2g}"


def _threshold(p: Pair) -> str:
    return f"{p.threshold:.1%}".replace(".0%", "%")


def summary_line(report: GateReport) -> str:
    counts = {v: len(report.by_verdict(v)) for v in decision.VERDICTS}
    parts = [f"{n} {v}" for v, n in counts.items() if n]
    parts += [f"{len(report.new)} new"] * bool(report.new)
    parts += [f"{len(report.missing)} missing"] * bool(report.missing)
    parts += [f"{len(report.unmatched)} not comparable"] * bool(report.unmatched)
    code = report.exit_code
    verdict = {0: "PASS: no regression", 1: "FAIL: performance regressed", 2: "CANNOT COMPARE"}[code]
    if code == 0 and counts[decision.UNDECIDED]:
        verdict = "PASS: no regression found, but not every benchmark could be decided"
    return f"{verdict} ({', '.join(parts) or 'nothing compared'})"


UNITS_IN_WORDS = {
    "round": "the runs' rounds (each a fresh process)",
    "block": "blocks of consecutive samples",
    "epoch": "the epochs of paired, alternating rounds",
    "baseline run": "the baseline runs",
}


def settings_line(report: GateReport) -> str:
    s = report.settings
    rules = f", {len(s.rules)} per-benchmark rule(s)" if s.rules else ""
    units = sorted({UNITS_IN_WORDS.get(p.evidence.unit, p.evidence.unit) for p in report.pairs}) or ["rounds"]
    return (
        f"regression = slower by more than the threshold (default {s.threshold:.1%}) AND a one-sided t-test "
        f"over {' / '.join(units)} gives p < alpha (default {s.alpha:g}), i.e. the {1 - 2 * s.alpha:.0%} "
        f"interval lies above 1{rules}"
    )


def note_lines(report: GateReport) -> list[str]:
    """The notes the table marks with *: why a benchmark is undecided, what would decide it."""
    return [f"* {describe(p.current)}: {p.note}" for p in report.pairs if p.note]


def noise_lines(report: GateReport) -> list[str]:
    """The run-to-run noise the comparison saw: its learned floor, how the whole run moved, the host."""
    lines = []
    shift = report.shift
    if shift is not None:
        floor = math.expm1(math.sqrt(shift.floor_var / 2))
        lines.append(
            f"every benchmark moved by {_pct(math.exp(shift.log_ratio))} together ({shift.members} of "
            f"{len(report.pairs)} alike), taken as the host's: the changes, intervals and verdicts above are "
            f"beyond that shift, with a run-to-run noise floor of +-{floor:.1%} per run (their spread around it)"
        )
        threshold = math.log1p(report.settings.threshold)
        if abs(shift.log_ratio) > threshold:
            lines.append(
                f"the shift itself ({_pct(math.exp(shift.log_ratio))}) is beyond the threshold: a change that "
                "moves every benchmark alike cannot be told from the host's; rerun both on a quiet host, or "
                "time both versions in one job (zhisuan ab)"
            )
    blocks = [p for p in report.pairs if p.evidence.unit == "block"]
    if blocks:
        lines.append(
            f"{len(blocks)} benchmark(s) without rounds (another tool's results, or an earlier zhisuan): blocks of "
            "one process's consecutive samples stand in for rounds, and cannot see variation between processes"
        )
    for side, results in (
        ("baseline", [p.baseline for p in report.pairs]),
        ("current", [p.current for p in report.pairs]),
    ):
        busy = busy_host(results)
        if busy:
            lines.append(f"{side} run: {busy}")
    return lines


# ---- terminal ------------------------------------------------------------------------------------


def rich_table(report: GateReport, title: str = "zhisuan compare") -> Table:
    table = Table(title=title, header_style="bold")
    for name, justify in (
        ("benchmark", "left"), ("device", "left"), ("baseline", "right"), ("current", "right"),
        ("change", "right"), ("interval", "right"), ("p", "right"), ("units", "right"), ("threshold", "right"),
        ("verdict", "left"),
    ):  # fmt: skip
        table.add_column(name, justify=justify)
    for p in report.pairs:
        style = VERDICT_STYLE[p.verdict]
        verdict = f"[{style}]{p.verdict}[/{style}]" + (" *" if p.note else "")
        table.add_row(
            safe(describe(p.current)), safe(p.current.device_name), units.duration(p.baseline.median_s),
            units.duration(p.current.median_s), _pct(p.ratio), _ci(p), _p_value(p), p.units, _threshold(p), verdict,
        )  # fmt: skip
    for r in report.new:
        table.add_row(
            safe(describe(r)), safe(r.device_name), "-", units.duration(r.median_s), "", "", "", "", "", "new"
        )
    for r in report.missing:
        table.add_row(
            safe(describe(r)),
            safe(r.device_name),
            units.duration(r.median_s),
            "-",
            "",
            "",
            "",
            "",
            "",
            "[red]missing[/red]",
        )
    for u in report.unmatched:
        r = u.current or u.baseline
        table.add_row(
            safe(describe(r)),
            safe(r.device_name),
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            f"not compared: {safe(u.reason)}",
        )
    return table


# ---- Markdown ------------------------------------------------------------------------------------


def markdown(report: GateReport, title: str = "zhisuan compare") -> str:
    """A pull-request comment: verdict first, then regressions, then everything else."""
    icon = {0: "✅", 1: "❌", 2: "⚠️"}[report.exit_code]
    heading = "zhisuan performance gate" + ("" if title == "zhisuan compare" else f" ({title})")
    lines = [f"### {icon} {escape(heading)}: {escape(summary_line(report))}", ""]
    for problem in report.problems:
        lines.append(f"- **cannot compare:** {escape(problem)}")
    if report.problems:
        lines.append("")
    if report.pairs:
        rows = []
        for p in report.pairs:
            verdict = bold(p.verdict) if p.verdict == decision.REGRESSED else escape(p.verdict)
            if p.note:
                verdict = Markup(f"{verdict} \\*")
            rows.append((verdict, describe(p.current), p.current.device_name, units.duration(p.baseline.median_s),
                         units.duration(p.current.median_s), _pct(p.ratio), _ci(p), _p_value(p), p.units,
                         _threshold(p)))  # fmt: skip
        columns = ["verdict", "benchmark", "device", "baseline", "current", "change", "interval", "p", "units",
                   "threshold"]  # fmt: skip
        lines += [table(columns, rows, [False] * 3 + [True] * 7), ""]
    for title, results in (("New benchmarks", report.new), ("Missing from the current run", report.missing)):
        if results:
            lines.append(f"**{title}:** " + ", ".join(code(describe(r)) for r in results))
            lines.append("")
    if report.unmatched:
        lines.append("**Not compared:**")
        lines += [
            f"- {code(describe(u.current or u.baseline))}: {escape(u.reason)}" for u in report.unmatched
        ]
        lines.append("")
    notes = note_lines(report) + noise_lines(report)
    lines += [f"- {escape(line)}" for line in notes] + [""] * bool(notes)
    notes = report.env.describe() if report.allow_env_mismatch else []
    notes += report.env.describe_notes()
    if notes:
        lines.append("<details><summary>environment differences</summary>\n")
        lines += [f"- {escape(n)}" for n in notes]
        lines.append("\n</details>\n")
    lines.append(f"<sub>{escape(settings_line(report))}</sub>")
    return "\n".join(lines) + "\n"


# ---- JUnit XML -----------------------------------------------------------------------------------


def _case(suite: ET.Element, r: Result, seconds: float | None) -> ET.Element:
    classname = ".".join(part for part in (r.kind, r.op, r.backend) if part)
    name = " ".join(part for part in (describe(r), f"@ {r.device_name}") if part)
    time = seconds if seconds is not None and math.isfinite(seconds) else 0.0
    return ET.SubElement(suite, "testcase", classname=classname, name=name, time=f"{time:.9f}")


def junit(report: GateReport, title: str = "zhisuan compare") -> str:
    """Each benchmark a testcase: regressions are failures, failed runs errors, missing skipped."""
    suite = ET.Element("testsuite", name=title)
    failures = errors = skipped = 0
    for problem in report.problems:  # crashed runs, environment mismatch, missing benchmarks
        case = ET.SubElement(suite, "testcase", classname="zhisuan.gate", name=problem.split(":")[0])
        ET.SubElement(case, "error", message=problem).text = problem
        errors += 1
    for p in report.pairs:
        case = _case(suite, p.current, p.current.median_s)
        text = (
            f"{p.verdict}: median {units.duration(p.baseline.median_s)} -> {units.duration(p.current.median_s)} "
            f"({_pct(p.ratio)}, interval {_ci(p)}, p={_p_value(p)}, {p.units}, threshold {_threshold(p)}) {p.note}"
        ).strip()
        if p.verdict == decision.REGRESSED:
            ET.SubElement(case, "failure", message=text, type="regression").text = text
            failures += 1
        else:
            ET.SubElement(case, "system-out").text = text
    for r in report.new:
        ET.SubElement(_case(suite, r, r.median_s), "system-out").text = "new benchmark: no baseline"
    for r, reason in [(r, "missing from the current run") for r in report.missing] + [
        (u.current or u.baseline, f"not compared: {u.reason}") for u in report.unmatched
    ]:
        ET.SubElement(_case(suite, r, None), "skipped", message=reason)
        skipped += 1
    tests = len(suite.findall("testcase"))
    suite.attrib.update(tests=str(tests), failures=str(failures), errors=str(errors), skipped=str(skipped))
    root = ET.Element("testsuites", tests=str(tests), failures=str(failures), errors=str(errors))
    root.append(suite)
    for element in root.iter():
        element.text = xml_text(element.text) if element.text is not None else None
        element.attrib = {name: xml_text(value) for name, value in element.attrib.items()}
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


# XML 1.0 allows tab, newline, carriage return and the characters from U+0020 on, less the
# surrogates and U+FFFE/U+FFFF; a NUL or an ESC from a result file would make the file unparsable.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """text with every character XML 1.0 cannot hold replaced by U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


def write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
