"""Results merged or lost (issue 12, class 2): a key that names a measurement completely, a merged
report whose headline agrees with its tables, lines written whole, readers that survive what a crash
leaves, and no output written over an input."""

import errno
import json
import os

import pytest
from report_data import collective_results, validate_results, write_results

from zhisuan.bench.cli import main
from zhisuan.bench.core import result_files
from zhisuan.bench.core.errors import UsageError
from zhisuan.bench.core.result_files import ResultWriter, read_results
from zhisuan.bench.core.results import Result
from zhisuan.bench.gate.comparison import run_gate
from zhisuan.bench.gate.history import History
from zhisuan.bench.report.sections.validate import banner


def timed(**fields) -> Result:
    values = dict(kind="kernel", op="matmul", backend="torch", shape={"M": 7, "N": 97, "K": 1025}, dtype="fp32",
                  device="cpu", device_name="Test CPU", samples_s=[1e-3, 1.1e-3, 0.9e-3], median_s=1e-3)  # fmt: skip
    values.update(fields)
    return Result(**values)


# ---- the key -----------------------------------------------------------------------------------


def test_collective_results_differing_in_place_op_or_root_are_different_measurements(tmp_path):
    results = collective_results()  # gloo and shm, in place and out of place, 9 sizes
    assert len({r.key() for r in results}) == len(results)
    summed = results[0]
    for change in ({"op": "max"}, {"in_place": not summed.extra["in_place"]}, {"root": 1}):
        other = Result.from_dict({**summed.to_dict(), "extra": {**summed.extra, **change}})
        assert other.key() != summed.key()
    path = write_results(tmp_path / "c.jsonl", results)
    with History(tmp_path / "h.db") as history:
        (added,) = history.add(read_results(path))
    assert added.added == len(results) and added.already_present == 0
    ok = [r for r in results if r.status == "ok"]
    report = run_gate(ok, ok)
    assert len(report.pairs) + len(report.unmatched) == len(ok)


def test_validate_records_of_each_rank_are_kept(tmp_path):
    records = [r for r in validate_results() if r.op == "matmul"]
    assert len({r.extra["rank"] for r in records}) == 4 == len({r.key() for r in records})
    with History(tmp_path / "h.db") as history:
        (added,) = history.add(records)
    assert added.added == 4


# ---- merged reports ----------------------------------------------------------------------------


def test_a_merged_report_gives_each_run_its_verdict_and_the_worst_on_top():
    first = validate_results()  # one FAIL (integrity)
    passing = []
    for r in validate_results():
        copy = Result.from_dict({**r.to_dict(), "run_id": "second-run"})
        if copy.op == "summary":
            copy.extra.update(verdict="PASS", counts={"PASS": 13})
        elif copy.extra.get("verdict") == "FAIL":
            copy.extra["verdict"] = "PASS"
        passing.append(copy)
    for order in ((passing, first), (first, passing)):  # whichever run comes last
        merged = order[0] + order[1]
        summaries = [r for r in merged if r.op == "summary"]
        checks = [r for r in merged if r.op != "summary"]
        b = banner(summaries, checks)
        assert b.verdict == "FAIL"
        assert b.counts["FAIL"] == sum(r.extra.get("verdict") == "FAIL" for r in checks) == 1
        assert any("run 20260921-validate: FAIL" in d for d in b.details)
        assert any("run second-run: PASS" in d for d in b.details)
        assert "from 2 runs" in b.headline


# ---- writing whole lines -------------------------------------------------------------------------


def test_a_writer_that_never_writes_leaves_no_file(tmp_path):
    with ResultWriter(tmp_path / "sub" / "r.jsonl"):
        pass
    assert not (tmp_path / "sub").exists()


def test_a_write_cut_short_by_a_full_disk_is_cut_back_off(tmp_path, monkeypatch):
    path = tmp_path / "r.jsonl"
    writer = ResultWriter(path)
    writer.write(timed(backend="first"))
    real_write = os.write

    def half_then_full(fd, data):  # the disk fills up in the middle of the line
        real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(result_files.os, "write", half_then_full)
    with pytest.raises(UsageError, match="No space left on device"):
        writer.write(timed(backend="second"))
    monkeypatch.undo()
    writer.write(timed(backend="third"))
    writer.close()
    text = path.read_text()
    assert text.endswith("\n") and [r.backend for r in read_results(path)] == ["first", "third"]


def test_dev_full_is_a_one_line_error_not_a_traceback(capsys):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    code = main(
        ["run", "matmul", "--backend", "torch", "--shape", "7", "--iters", "2", "--json", "/dev/full"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "zhisuan: error: cannot write results to /dev/full" in err and "Traceback" not in err


# ---- reading what a crash leaves ---------------------------------------------------------------


def test_readers_skip_a_torn_last_line_and_empty_files_with_a_warning(tmp_path, capsys):
    folder = tmp_path / "zhisuan-results"
    folder.mkdir()
    (folder / "crashed-at-once.jsonl").write_text("")
    whole = json.dumps(timed().to_dict())
    (folder / "torn.jsonl").write_text(whole + "\n" + whole[:50])
    results = read_results(folder)
    err = capsys.readouterr().err
    assert len(results) == 1
    assert (
        "crashed-at-once.jsonl: empty file skipped" in err and "torn.jsonl:2: last line is cut short" in err
    )
    assert main(["report", str(folder), "--out-dir", str(tmp_path / "report")]) == 0
    (folder / "torn.jsonl").write_text(whole[:50] + "\n" + whole + "\n")  # torn, then written on
    with pytest.raises(UsageError, match="torn.jsonl:1: not valid JSON"):
        read_results(folder)


# ---- no output over an input -------------------------------------------------------------------


def test_an_output_that_is_an_input_or_another_output_is_refused(tmp_path, capsys):
    results = write_results(tmp_path / "r.jsonl", [timed()])
    before = results.read_bytes()
    cases = [
        ["run", "matmul", "--backend", "torch", "--shape", "7", "--iters", "2", "--json", str(tmp_path / "x"),
         "--csv", str(tmp_path / "x")],
        ["report", str(results), "--html", str(results)],
        ["report", str(tmp_path), "--markdown", str(tmp_path / "." / "r.jsonl")],
        ["compare", str(results), str(results), "--markdown", str(results)],
        ["compare", str(results), str(results), "--markdown", str(tmp_path / "o"), "--junit", str(tmp_path / "o")],
    ]  # fmt: skip
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "zhisuan: error:" in err and ("is an input" in err or "the same file" in err), err
    assert results.read_bytes() == before and not (tmp_path / "x").exists()
