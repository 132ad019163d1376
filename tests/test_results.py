import json

import pytest

from zhisuan.bench.core import pytest_json
from zhisuan.bench.core.result_files import ResultWriter, read_results, write_csv
from zhisuan.bench.core.results import SCHEMA_VERSION, Result, ResultFileError


def sample_result(**overrides):
    fields = dict(
        kind="kernel",
        op="matmul",
        backend="torch",
        shape={"M": 7, "N": 97, "K": 1025},
        dtype="fp32",
        device="cpu",
        device_name="Test CPU",
        samples_s=[1e-3, 2e-3],
        median_s=1.5e-3,
    )
    fields.update(overrides)
    return Result(**fields)


def test_round_trip_and_append(tmp_path):
    path = tmp_path / "r.jsonl"
    with ResultWriter(path) as writer:
        writer.write(sample_result())
    with ResultWriter(path) as writer:  # appends, never truncates
        writer.write(sample_result(backend="cpp"))
    results = read_results(path)
    assert [r.backend for r in results] == ["torch", "cpp"]
    assert results[0].shape == {"M": 7, "N": 97, "K": 1025} and results[0].samples_s == [1e-3, 2e-3]
    assert results[0].key() == sample_result().key()


def test_each_result_is_on_disk_as_soon_as_written(tmp_path):
    path = tmp_path / "r.jsonl"
    writer = ResultWriter(path)
    writer.write(sample_result())
    # Without close(): a crash after this point keeps the line.
    assert len(read_results(path)) == 1
    writer.close()


def test_bad_files_give_clear_errors(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ResultFileError, match="holds no results"):
        read_results(empty)
    truncated = tmp_path / "trunc.jsonl"
    truncated.write_text('{"kind": "kern\n' + json.dumps(sample_result().to_dict()) + "\n")
    with pytest.raises(ResultFileError, match="trunc.jsonl:1: not valid JSON"):
        read_results(truncated)
    future = tmp_path / "future.jsonl"
    future.write_text(json.dumps({**sample_result().to_dict(), "schema": SCHEMA_VERSION + 1}) + "\n")
    with pytest.raises(ResultFileError, match="schema version 2 is not supported"):
        read_results(future)
    with pytest.raises(ResultFileError, match="no such file"):
        read_results(tmp_path / "missing.jsonl")


def test_csv_export(tmp_path):
    path = tmp_path / "r.csv"
    write_csv([sample_result(check={"max_abs_err": 1e-6, "tolerance": 1e-5, "passed": True})], path)
    header, row = path.read_text().splitlines()
    assert "median_s" in header and "M=7,N=97,K=1025" in row and "True" in row


def test_one_loader_reads_json_lines_pytest_benchmark_json_directories_and_lists(tmp_path):
    with ResultWriter(tmp_path / "run.jsonl") as writer:
        writer.write(sample_result())
    measured = sample_result(backend="cpp", samples_s=[3e-3, 4e-3, 5e-3])
    entry = pytest_json.benchmark_entry(
        measured, name="test_mm", fullname="tests/test_x.py::test_mm", params=None, param=None, options={}
    )
    pytest_json.write(tmp_path / "fixture.json", [entry])
    from_dir = read_results(tmp_path)
    assert [r.backend for r in from_dir] == ["torch", "cpp"]  # *.jsonl first, then *.json
    assert from_dir[1].samples_s == [3e-3, 4e-3, 5e-3]
    from_list = read_results([tmp_path / "fixture.json", tmp_path / "run.jsonl"])
    assert [r.backend for r in from_list] == ["cpp", "torch"]  # in the order given
    with pytest.raises(ResultFileError, match="no result files given"):
        read_results([])
    (tmp_path / "other").mkdir()
    with pytest.raises(ResultFileError, match="holds no"):
        read_results(tmp_path / "other")
