"""`zhisuan compare` from the command line: inputs, bad inputs, exit codes, Markdown and JUnit."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from gate_results import failed_result, timed_result

from zhisuan.bench.cli import main
from zhisuan.bench.core.result_files import ResultWriter


def write(path, results):
    with ResultWriter(path) as writer:
        for r in results:
            writer.write(r)
    return str(path)


@pytest.fixture
def baseline(tmp_path):
    return write(tmp_path / "base.jsonl", [timed_result(seed=1), timed_result(seed=2, backend="torch")])


def compare(*argv):
    return main(["compare", *argv])


def test_no_regression_exit_0_with_table(tmp_path, baseline, capsys):
    current = write(
        tmp_path / "cur.jsonl", [timed_result(seed=3, run_id="b"), timed_result(seed=4, backend="torch")]
    )
    assert compare(baseline, current) == 0
    out = capsys.readouterr().out
    assert "matmul cpp M=256,N=256,K=256 fp32" in out and "unchanged" in out and "PASS: no regression" in out


def test_regression_exit_1_markdown_and_junit(tmp_path, baseline, capsys):
    current = write(
        tmp_path / "cur.jsonl",
        [timed_result(1.15e-3, seed=3, run_id="b"), timed_result(seed=4, backend="torch", run_id="b"),
         timed_result(seed=5, backend="mine", run_id="b")],
    )  # fmt: skip
    md, xml = tmp_path / "comment.md", tmp_path / "junit.xml"
    assert compare(baseline, current, "--markdown", str(md), "--junit", str(xml)) == 1
    assert "FAIL: performance regressed (1 regressed, 1 unchanged, 1 new)" in capsys.readouterr().out
    comment = md.read_text()
    assert comment.startswith("### ❌ zhisuan performance gate: FAIL")
    assert "| **regressed** | matmul cpp M=256,N=256,K=256 fp32 | Test CPU 9000 |" in comment
    assert "**New benchmarks:** `matmul mine M=256,N=256,K=256 fp32`" in comment
    suite = ET.parse(xml).getroot().find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "1" and suite.get("errors") == "0"
    failure = suite.find("testcase[@classname='kernel.matmul.cpp']/failure")
    assert failure is not None and "+1" in failure.get("message") and "threshold 5%" in failure.get("message")


def test_crashed_current_run_is_exit_2_never_regression(tmp_path, baseline, capsys):
    current = write(
        tmp_path / "cur.jsonl", [failed_result(run_id="b"), timed_result(seed=4, backend="torch")]
    )
    xml = tmp_path / "junit.xml"
    assert compare(baseline, current, "--junit", str(xml)) == 2
    captured = capsys.readouterr()
    assert "cannot compare: current run failed: matmul cpp M=256,N=256,K=256 fp32" in captured.err
    assert "RuntimeError: boom" in captured.err and "CANNOT COMPARE" in captured.out
    suite = ET.parse(xml).getroot().find("testsuite")
    assert suite.get("errors") == "1" and suite.get("failures") == "0"


def test_thresholds_file_and_threshold_option(tmp_path, baseline):
    current = write(
        tmp_path / "cur.jsonl", [timed_result(1.15e-3, seed=3), timed_result(seed=4, backend="torch")]
    )
    assert compare(baseline, current, "--threshold", "20%") == 0
    config = tmp_path / "gate.toml"
    config.write_text('[[rule]]\nbackend = "cpp"\nthreshold = "25%"\n')
    assert compare(baseline, current, "--thresholds", str(config)) == 0


# ---- bad inputs: one clear line, exit 2 ----------------------------------------------------------


def test_empty_file(tmp_path, baseline, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert compare(baseline, str(empty)) == 2
    assert f"zhisuan: error: {empty}: file holds no results" in capsys.readouterr().err


def test_truncated_json_line(tmp_path, baseline, capsys):
    text = Path(baseline).read_text()
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_text(text[: len(text) - 40])  # the second line cut short, as by a killed writer
    # The torn last line is skipped with a warning; its benchmark is then missing: cannot compare.
    assert compare(baseline, str(truncated)) == 2
    err = capsys.readouterr().err
    assert f"{truncated}:2: last line is cut short" in err and "missing from the current run" in err
    assert "Traceback" not in err
    broken = tmp_path / "broken.jsonl"
    broken.write_text(text[: len(text) - 40] + "\n" + text)  # a bad line in the middle: an error
    assert compare(baseline, str(broken)) == 2
    assert f"{broken}:2: not valid JSON" in capsys.readouterr().err


def test_wrong_schema_version(tmp_path, baseline, capsys):
    lines = Path(baseline).read_text().splitlines()
    record = json.loads(lines[0])
    record["schema"] = 99
    future = tmp_path / "future.jsonl"
    future.write_text(json.dumps(record) + "\n")
    assert compare(str(future), baseline) == 2
    assert "future.jsonl:1: result schema version 99 is not supported" in capsys.readouterr().err


def test_results_from_another_device(tmp_path, baseline, capsys):
    other = write(
        tmp_path / "gpu.jsonl", [timed_result(seed=3, device="cuda:0", device_name="NVIDIA H100 80GB HBM3")]
    )
    assert compare(baseline, other) == 2
    err = capsys.readouterr().err
    assert "cannot compare: environments differ" in err
    assert "baseline ran on Test CPU 9000; current on NVIDIA H100 80GB HBM3" in err
    assert "missing" not in err  # the device says it all


def test_missing_file_and_bad_options(tmp_path, baseline, capsys):
    assert compare(baseline, str(tmp_path / "nope.jsonl")) == 2
    assert "nope.jsonl: no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", baseline, baseline, "--threshold", "5"])
    assert exit_info.value.code == 2 and "ambiguous: write 5% or 0.05" in capsys.readouterr().err
    assert compare("history:main", baseline, "--db", str(tmp_path / "h.db")) == 2
    assert "no such baseline" in capsys.readouterr().err


# ---- pytest-benchmark JSON ----------------------------------------------------------------------


def pytest_benchmark_file(path, samples, fullname="tests/test_x.py::test_sum"):
    """A file as pytest-benchmark's own `benchmark` fixture writes it (--benchmark-json)."""
    path.write_text(
        json.dumps(
            {
                "machine_info": {"node": "ci-1", "processor": "x86_64", "python_version": "3.11.7",
                                 "cpu": {"brand_raw": "Test CPU 9000"}},
                "commit_info": {"id": "abc"},
                "benchmarks": [{"group": None, "name": "test_sum", "fullname": fullname, "params": None,
                                "param": None, "extra_info": {}, "options": {},
                                "stats": {"median": 1e-3, "data": samples,
                                          "iterations": 1}}],
                "datetime": "2026-01-01T00:00:00+00:00",
                "version": "5.2.3",
            },
            indent=4,
        )
    )  # fmt: skip
    return str(path)


def test_reads_files_written_by_pytest_benchmark_itself(tmp_path, capsys):
    base = pytest_benchmark_file(tmp_path / "0001_base.json", timed_result(seed=1).samples_s)
    slow = pytest_benchmark_file(tmp_path / "0002_slow.json", timed_result(1.3e-3, seed=2).samples_s)
    assert compare(base, slow) == 1
    assert "tests/test_x.py::test_sum" in capsys.readouterr().out
    no_data = tmp_path / "no_data.json"
    pytest_benchmark_file(no_data, [])
    md = tmp_path / "comment.md"
    assert compare(base, str(no_data), "--markdown", str(md)) == 2
    assert "current has 0 timing sample(s); at least 2 are needed (pytest-benchmark keeps" in md.read_text()


def test_jsonl_named_json_is_still_json_lines(tmp_path, baseline):
    renamed = tmp_path / "results.json"
    renamed.write_text(Path(baseline).read_text())
    assert compare(baseline, str(renamed)) == 0


def test_truncated_pytest_benchmark_file(tmp_path, capsys):
    path = tmp_path / "cut.json"
    text = Path(pytest_benchmark_file(path, [1e-3, 1.1e-3])).read_text()
    path.write_text(text[: len(text) // 2])
    assert compare(str(path), str(path)) == 2
    assert "cut.json: not valid JSON" in capsys.readouterr().err
