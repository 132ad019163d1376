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
from zhisuan.bench.gate.comparison import GateReport, Pair, describe

VERDICT_STYLE = {
    decision.REGRESSED: "bold red",
    decision.IMPROVED: "green",
    decision.UNCHANGED: "dim",
    decision.NOISY: "yellow",
}


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f}%"


def _ci(p: Pair) -> str:
    return f"{_pct(p.ci_low)} .. {_pct(p.ci_high)}"


def _p_value(p: Pair) -> str:
    value = p.p_faster if p.ratio < 1 else p.p_slower
    return f"{value:.2g}"


def summary_line(report: GateReport) -> str:
    counts = {v: len(report.by_verdict(v)) for v in decision.VERDICTS}
    parts = [f"{n} {v}" for v, n in counts.items() if n]
    parts += [f"{len(report.new)} new"] * bool(report.new)
    parts += [f"{len(report.missing)} missing"] * bool(report.missing)
    parts += [f"{len(report.unmatched)} not comparable"] * bool(report.unmatched)
    code = report.exit_code
    verdict = {0: "PASS: no regression", 1: "FAIL: performance regressed", 2: "CANNOT COMPARE"}[code]
    return f"{verdict} ({', '.join(parts) or 'nothing compared'})"


def settings_line(report: GateReport) -> str:
    s = report.settings
    rules = f", {len(s.rules)} per-benchmark rule(s)" if s.rules else ""
    return (
        f"regression = median slower by more than the threshold (default {s.threshold:.1%}) AND "
        f"Mann-Whitney U p < alpha (default {s.alpha:g}); interval: bootstrap {1 - s.alpha:.0%} CI{rules}"
    )


# ---- terminal ------------------------------------------------------------------------------------


def rich_table(report: GateReport) -> Table:
    table = Table(title="zhisuan compare", header_style="bold")
    for name, justify in (
        ("benchmark", "left"), ("device", "left"), ("baseline", "right"), ("current", "right"),
        ("change", "right"), ("CI", "right"), ("p", "right"), ("threshold", "right"), ("verdict", "left"),
    ):  # fmt: skip
        table.add_column(name, justify=justify)
    for p in report.pairs:
        style = VERDICT_STYLE[p.verdict]
        verdict = f"[{style}]{p.verdict}[/{style}]" + (f" ({safe(p.note)})" if p.note else "")
        table.add_row(
            safe(describe(p.current)), safe(p.current.device_name), units.duration(p.baseline.median_s),
            units.duration(p.current.median_s), _pct(p.ratio), _ci(p), _p_value(p), f"{p.threshold:.0%}", verdict,
        )  # fmt: skip
    for r in report.new:
        table.add_row(
            safe(describe(r)), safe(r.device_name), "-", units.duration(r.median_s), "", "", "", "", "new"
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
            "[red]missing[/red]",
        )
    for u in report.unmatched:
        r = u.current or u.baseline
        table.add_row(
            safe(describe(r)), safe(r.device_name), "", "", "", "", "", "", f"not compared: {safe(u.reason)}"
        )
    return table


# ---- Markdown ------------------------------------------------------------------------------------


def markdown(report: GateReport) -> str:
    """A pull-request comment: verdict first, then regressions, then everything else."""
    icon = {0: "✅", 1: "❌", 2: "⚠️"}[report.exit_code]
    lines = [f"### {icon} zhisuan performance gate: {escape(summary_line(report))}", ""]
    for problem in report.problems:
        lines.append(f"- **cannot compare:** {escape(problem)}")
    if report.problems:
        lines.append("")
    if report.pairs:
        rows = []
        for p in report.pairs:
            verdict = bold(p.verdict) if p.verdict == decision.REGRESSED else escape(p.verdict)
            if p.note:
                verdict = Markup(f"{verdict} ({escape(p.note)})")
            rows.append((verdict, describe(p.current), p.current.device_name, units.duration(p.baseline.median_s),
                         units.duration(p.current.median_s), _pct(p.ratio), _ci(p), _p_value(p), f"{p.threshold:.0%}"))  # fmt: skip
        columns = ["verdict", "benchmark", "device", "baseline", "current", "change", "CI", "p", "threshold"]
        lines += [table(columns, rows, [False] * 3 + [True] * 6), ""]
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


def junit(report: GateReport) -> str:
    """Each benchmark a testcase: regressions are failures, failed runs errors, missing skipped."""
    suite = ET.Element("testsuite", name="zhisuan compare")
    failures = errors = skipped = 0
    for problem in report.problems:  # crashed runs, environment mismatch, missing benchmarks
        case = ET.SubElement(suite, "testcase", classname="zhisuan.gate", name=problem.split(":")[0])
        ET.SubElement(case, "error", message=problem).text = problem
        errors += 1
    for p in report.pairs:
        case = _case(suite, p.current, p.current.median_s)
        text = (
            f"{p.verdict}: median {units.duration(p.baseline.median_s)} -> {units.duration(p.current.median_s)} "
            f"({_pct(p.ratio)}, CI {_ci(p)}, p={_p_value(p)}, threshold {p.threshold:.0%}) {p.note}"
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
