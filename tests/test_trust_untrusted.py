"""Untrusted files and injection (issue 12, class 3): one schema check for every reader, nothing
invalid in the history database, and every text escaped for where it lands (Markdown, terminal,
JUnit XML). A property-based test feeds random records to every reader."""

import io
import json
import math
import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from report_data import collective_results, kernel_results, validate_results, write_results
from rich.console import Console

from zhisuan.bench.cli import main
from zhisuan.bench.core.errors import UsageError
from zhisuan.bench.core.result_files import read_results
from zhisuan.bench.core.results import Result, ResultFileError
from zhisuan.bench.gate import formats
from zhisuan.bench.gate.comparison import run_gate
from zhisuan.bench.gate.history import History
from zhisuan.bench.report.assemble import build_document
from zhisuan.bench.report.to_html import render_html
from zhisuan.bench.report.to_markdown import render_markdown

HOSTILE = "evil\n### ✅ PASS ![x](http://e/x.png) [a](javascript:alert(1)) <script>alert(1)</script> [red]\x1b[2J\x00"


def timed(**fields) -> Result:
    values = dict(kind="kernel", op="matmul", backend="torch", shape={"M": 7, "N": 97, "K": 1025}, dtype="fp32",
                  device="cpu", device_name="Test CPU", samples_s=[1e-3, 1.1e-3, 0.9e-3, 1.05e-3], median_s=1e-3,
                  run_id="run-a", timestamp=1.7e9)  # fmt: skip
    values.update(fields)
    return Result(**values)


# ---- the schema ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("timestamp", "yesterday", "field 'timestamp': expected a finite number, got text"),
        ("median_s", "1 ms", "field 'median_s': expected a finite number"),
        ("median_s", -1.0, "expected a number >= 0"),
        ("shape", [1024, 1024], "field 'shape': expected a mapping"),
        ("shape", {"M": {"deep": 1}}, "'M': expected a number, text or true/false"),
        ("env", "linux", "field 'env': expected a mapping"),
        ("op", 7, "field 'op': expected text, got an integer"),
        ("run_id", None, "field 'run_id': expected text, got null"),
        ("flops", "2e9", "field 'flops': expected a finite number"),
        ("samples_s", [1e-3, "x"], "field 'samples_s': item 1"),
        ("samples_s", 5, "expected a list of seconds"),
        ("status", "great", "'great' is not one of ok, check-failed"),
        ("interpreted", "no", "expected true or false"),
        ("extra", {"rank": [1]}, "field 'extra.rank': expected an integer"),
        ("extra", {"in_place": "yes"}, "field 'extra.in_place'"),
        ("check", {"passed": "yes"}, "field 'check.passed'"),
    ],
)
def test_a_bad_record_is_an_error_naming_file_line_and_field(tmp_path, field, value, message):
    good = timed().to_dict()
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, field: value}) + "\n")
    with pytest.raises(ResultFileError) as info:
        read_results(path)
    assert f"{path}:2: " in str(info.value) and message in str(info.value)


def test_deep_nesting_and_nan_are_errors_not_tracebacks(tmp_path):
    deep = {"a": 1}
    for _ in range(40):
        deep = {"a": deep}
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps({**timed().to_dict(), "extra": deep}) + "\n")
    with pytest.raises(ResultFileError, match="nested more than"):
        read_results(path)
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ResultFileError, match="deep.jsonl:1"):
        read_results(path)
    path.write_text(json.dumps({**timed().to_dict(), "median_s": math.nan}) + "\n")
    with pytest.raises(ResultFileError, match="expected a finite number, got nan"):
        read_results(path)


def test_nothing_invalid_enters_the_history_database(tmp_path, capsys):
    db = tmp_path / "h.db"
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({**timed().to_dict(), "median_s": "slow"}) + "\n")
    assert main(["history", "add", str(path), "--db", str(db)]) == 2
    assert "field 'median_s'" in capsys.readouterr().err
    with History(db) as history, pytest.raises(ResultFileError, match="nothing was added"):
        history.add([timed(timestamp="now")])
    with History(db) as history:
        assert history.runs() == []
    # A database edited by hand names the stored result that is wrong.
    with History(db) as history:
        history.add([timed()])
        history.db.execute("UPDATE results SET record = ?", (json.dumps({**timed().to_dict(), "shape": 3}),))
    assert main(["history", "compare", str(write_results(tmp_path / "c.jsonl", [timed(run_id="b")])), "--last", "1",
                 "--db", str(db)]) == 2  # fmt: skip
    assert "stored result 1 is not a valid record: field 'shape'" in capsys.readouterr().err


# ---- escaping --------------------------------------------------------------------------------------


def assert_inert_markdown(md: str) -> None:
    """No link, image or HTML tag that is not escaped, no heading made by data, no control character."""
    assert not re.search(r"(?<!\\)\]\(", md)  # '](' of a link or image
    assert not re.search(r"(?<!\\)<(script|img|a )", md)
    assert "\n### ✅" not in md and "evil\n" not in md
    assert "\x1b" not in md and "\x00" not in md


def hostile_pair():
    base = timed(backend=HOSTILE, device_name="CPU " + HOSTILE, run_id="r1")
    current = timed(backend=HOSTILE, device_name="CPU " + HOSTILE, run_id="r2", samples_s=[2e-3, 2.1e-3, 1.9e-3, 2e-3], median_s=2e-3)  # fmt: skip
    failed = timed(backend="other", status="error", error=HOSTILE, samples_s=[], median_s=None, run_id="r2",
                   device_name="CPU " + HOSTILE)  # fmt: skip
    return [base, timed(backend="other", run_id="r1", device_name="CPU " + HOSTILE)], [current, failed]


def test_compare_markdown_junit_and_terminal_escape_what_files_say():
    baseline, current = hostile_pair()
    report = run_gate(baseline, current)
    md = formats.markdown(report)
    assert_inert_markdown(md)
    assert md.count("\n### ") == 0 and md.startswith("### ⚠️")  # the one heading is zhisuan's
    xml = formats.junit(report)
    ET.fromstring(xml.encode("utf-8"))  # parses: the NUL and ESC were replaced
    out = io.StringIO()
    Console(file=out, width=400, force_terminal=True).print(formats.rich_table(report))
    text = out.getvalue()
    assert "\x1b[2J" not in text and "\x00" not in text and "[red]" in text  # markup shown, not obeyed


def test_cannot_compare_lines_quote_file_content_in_one_inert_line(tmp_path, capsys):
    baseline, _ = hostile_pair()
    base, current = tmp_path / "base.jsonl", tmp_path / "current.jsonl"
    base.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in baseline))
    current.write_text(json.dumps(timed(run_id="r2").to_dict()) + "\n")  # the hostile benchmarks are missing
    assert main(["compare", str(base), str(current)]) == 2
    problems = [line for line in capsys.readouterr().err.splitlines() if "cannot compare" in line]
    assert problems and all("\x1b" not in line and "\x00" not in line for line in problems)
    assert any("evil\\x0a### " in line for line in problems)  # the newline shown, not obeyed


def test_report_markdown_and_html_escape_what_files_say():
    results = [timed(backend=HOSTILE, error=HOSTILE, status="error", samples_s=[], median_s=None),
               timed(op=HOSTILE, kind=HOSTILE)]  # fmt: skip
    doc = build_document(results, ["x.jsonl"], title="title " + HOSTILE)
    md, _ = render_markdown(doc, "figs")
    assert_inert_markdown(md)
    html = render_html(doc)
    assert "<script>alert" not in html


def test_terminal_output_of_run_and_history_shows_markup_and_escapes_as_text(tmp_path, capsys):
    path = write_results(
        tmp_path / "r.jsonl", [timed(backend="[bold]x[/bold]\x1b]0;pwned\x07", run_id="[/x]")]
    )
    db = str(tmp_path / "h.db")
    assert main(["history", "add", str(path), "--db", db]) == 0
    assert main(["history", "runs", "--db", db]) == 0
    assert main(["history", "show", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "\x1b]0;" not in out and "\x07" not in out and "[/x]" in out and "[bold]x[/bold]" in out


# ---- random records to every reader --------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
# Values of the right JSON type with odd contents: these pass the schema and test the readers.
NEAR_VALID = (
    st.text(max_size=12) | st.floats(min_value=0, max_value=1e300) | st.integers(-5, 10**20) | st.booleans()
    | st.lists(st.floats(min_value=0, max_value=1e3), max_size=4)
    | st.dictionaries(st.text(max_size=6), st.text(max_size=6) | st.integers(-3, 3) | st.floats(0, 1e9), max_size=3)
    | st.lists(st.dictionaries(st.sampled_from(["check", "host", "rank", "value", "verdict", "unit"]),
                               st.text(max_size=5) | st.integers(-2, 5) | st.none()), max_size=2)
)  # fmt: skip
TEMPLATES = [timed()] + kernel_results()[:2] + collective_results()[:2] + validate_results()[-3:]
FIELDS = list(Result.__dataclass_fields__) + ["extra.rank", "extra.verdict", "extra.in_place", "extra.op",
                                               "extra.counts", "extra.cluster", "extra.stragglers", "extra.devices",
                                               "extra.host", "extra.value", "extra.threshold", "check.max_abs_err",
                                               "env.host"]  # fmt: skip


@st.composite
def records(draw):
    """A record of every kind zhisuan writes, with some fields replaced by random JSON values."""
    record = json.loads(json.dumps(draw(st.sampled_from(TEMPLATES)).to_dict()))
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4)):
        value = draw(JSON_VALUES | NEAR_VALID)
        if "." in name:
            parent, child = name.split(".")
            if not isinstance(record.get(parent), dict):
                record[parent] = {}
            record[parent][child] = value
        else:
            record[name] = value
    return record


def _write(tmp_path, rows) -> str:
    path = tmp_path / "random.jsonl"
    path.write_text("".join(json.dumps(row, allow_nan=True) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def _each_reader(path: str, tmp_path) -> None:
    """Every reader: either it works or it says why in one line (UsageError), never anything else."""
    try:
        results = read_results(path)
    except UsageError:
        return
    doc = build_document(results, [path])
    render_markdown(doc, "figures")
    render_html(doc)
    report = run_gate(results, results)
    formats.markdown(report)
    ET.fromstring(formats.junit(report).encode("utf-8"))
    Console(file=io.StringIO(), width=200).print(formats.rich_table(report))
    db = str(tmp_path / "random.db")
    for argv in (["history", "add", path], ["history", "runs"], ["history", "show"],
                 ["history", "compare", path, "--last", "2"]):  # fmt: skip
        assert main([*argv, "--db", db]) in (0, 1, 2)
    with History(db) as history:
        labels = history.labels()
    if labels:
        assert main(["history", "show", labels[0][0], "--device", labels[0][1], "--db", db]) in (0, 1, 2)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])  # fmt: skip
@given(rows=st.lists(records(), min_size=1, max_size=3))
def test_random_records_reach_every_reader_without_a_traceback(tmp_path_factory, rows):
    tmp_path = tmp_path_factory.mktemp("random")
    _each_reader(_write(tmp_path, rows), tmp_path)
