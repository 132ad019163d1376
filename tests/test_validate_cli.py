"""`zhisuan validate` end to end on this CPU (tiny test sizes): the records and their contract, the
exit code, usage errors in one line, and Ctrl-C during a burn-in ending cleanly with what ran."""

import os
import signal
import subprocess
import sys
import time

import pytest

from bench.cli import main
from bench.results import read_results
from bench.validate.context import RECORD_KEYS
from bench.validate.levels import TEST_SIZES_ENV

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


def test_ctrl_c_during_burn_in_ends_cleanly_with_what_ran(tmp_path):
    path = tmp_path / "burn.jsonl"
    env = dict(os.environ, **{TEST_SIZES_ENV: "tiny"})
    cmd = [sys.executable, "-m", "bench", "validate", "--level", "burn-in", "--duration", "10m", "--json", str(path),
           "--report-dir", str(tmp_path / "report")]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 150
        # The integrity records are written just before the burn-in starts.
        while time.monotonic() < deadline and proc.poll() is None:
            if path.exists() and '"op": "integrity"' in path.read_text():
                break
            time.sleep(0.5)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(2.0)  # a few windows of the burn-in
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (0, 1), err[-3000:]
    assert "stopping after the current step" in err and "Traceback" not in err
    records = read_results(path)
    (burn,) = [r for r in records if r.op == "burn-in"]
    assert burn.extra["interrupted"] and burn.extra["windows"] >= 1
    assert burn.extra["duration_s"] < 120 and burn.extra["requested_duration_s"] == 600
    assert {"t", "tflops", "sm_clock_mhz", "temp_c", "power_w", "throttle"} <= burn.extra["timeline"][
        0
    ].keys()
    assert burn.extra["verdict"] in ("PASS", "WARN", "FAIL") and burn.extra["threshold"]["basis"].startswith(
        "fraction of burst"
    )
    summary = records[-1]
    assert summary.op == "summary" and summary.extra["interrupted"] and summary.extra["level"] == "burn-in"
    assert "interrupted" in out
