"""`zhisuan validate` end to end on this CPU (tiny test sizes): the records and their contract, the
exit code, usage errors in one line, a burn-in that runs for its duration. (Ctrl-C during a burn-in:
tests/test_validate_cluster.py.)"""

import pytest

from zhisuan.bench.cli import main
from zhisuan.bench.core.result_files import read_results
from zhisuan.bench.validate.context import RECORD_KEYS
from zhisuan.bench.validate.levels import TEST_SIZES_ENV

OPS = {"matmul", "stream-copy", "stream-scale", "stream-add", "stream-triad", "attention", "all_reduce", "h2d", "d2h",
       "integrity", "summary"}  # fmt: skip


def test_quick_validate_writes_every_check_and_a_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(TEST_SIZES_ENV, "tiny")
    path = tmp_path / "v.jsonl"
    code = main(["validate", "--json", str(path), "--report-dir", str(tmp_path / "report")])
    records = read_results(path)
    assert {r.op for r in records} == OPS
    summary = records[-1]
    assert summary.op == "summary" and summary.kind == "validate"
    for r in records[:-1]:
        assert r.kind == "validate" and r.extra.keys() >= RECORD_KEYS, r.op
        assert r.extra["sizes"] == "test" and r.extra["world"] == 1 and r.extra["rank"] == 0
    verdicts = [r.extra["verdict"] for r in records]
    assert code == (1 if "FAIL" in verdicts else 0)
    extra = summary.extra
    assert (
        extra["verdict"] in ("PASS", "WARN", "FAIL")
        and extra["level"] == "quick"
        and not extra["interrupted"]
    )
    assert extra["stragglers"] == [] and len(extra["devices"]) == 1
    assert extra["cluster"]["ranks"] == 1 and extra["cluster"]["achieved_pflops"] > 0
    assert extra["cluster"]["nameplate_pflops"] or extra["cluster"]["nameplate_reason"]
    out = capsys.readouterr().out
    assert "overall:" in out and "Matmul throughput" in out
    # the report of this very run shows its checks against their thresholds and its matmul on a
    # roofline: embedded in the page, and as files beside the Markdown (issue 14 §4)
    report = tmp_path / "report"
    html, md = (report / "report.html").read_text(), (report / "report.md").read_text()
    assert 'alt="bar chart: each check' in html and 'alt="matmul roofline"' in html
    figures = [p.name for p in (report / "report-figures").iterdir()]
    for name in ("verdicts", "roofline-validate"):
        (png,) = [f for f in figures if name in f]
        assert f"(report-figures/{png})" in md


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--duration", "5m"], "--duration applies to --level burn-in only"),
        (["--level", "burn-in", "--duration", "soon"], "--duration 'soon'"),
        (["--margin", "-1"], "--margin"),
        (["--thresholds", "/nonexistent.toml"], "no such file"),
    ],
)
def test_usage_errors_are_one_line(argv, message, capsys):
    assert main(["validate", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_nproc_under_a_launcher_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["validate", "--nproc", "2"]) == 2
    assert "already rank 0 of 2" in capsys.readouterr().err


def test_burn_in_runs_for_its_duration(tmp_path, monkeypatch):
    monkeypatch.setenv(TEST_SIZES_ENV, "tiny")
    path = tmp_path / "burn.jsonl"
    code = main(
        [
            "validate",
            "--level",
            "burn-in",
            "--duration",
            "1s",
            "--json",
            str(path),
            "--report-dir",
            str(tmp_path / "r"),
        ]
    )
    records = read_results(path)
    (burn,) = [r for r in records if r.op == "burn-in"]
    assert code == (1 if "FAIL" in [r.extra["verdict"] for r in records] else 0)
    assert not burn.extra["interrupted"] and burn.extra["requested_duration_s"] == 1.0
    assert (
        1.0 <= burn.extra["duration_s"] < 10 and burn.extra["windows"] >= 3 and burn.extra["window_s"] == 0.25
    )
    assert {"t", "tflops", "sm_clock_mhz", "temp_c", "power_w", "throttle"} <= burn.extra["timeline"][
        0
    ].keys()
    assert burn.extra["verdict"] in ("PASS", "WARN", "FAIL") and burn.extra["threshold"]["basis"].startswith(
        "fraction of burst"
    )
    assert burn.extra["burst"] > 0 and burn.extra["sustained"] > 0 and burn.check["passed"]
    assert records[-1].extra["level"] == "burn-in" and not records[-1].extra["interrupted"]
