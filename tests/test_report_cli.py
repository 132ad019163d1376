"""zhisuan report as a user runs it: loading result files, the command, a report of a real run."""

from __future__ import annotations

import pytest
from report_data import (
    collective_results,
    kernel_results,
    odd_kind_result,
    validate_results,
    write_results,
)

from zhisuan.bench.cli import main
from zhisuan.bench.core.result_files import read_results
from zhisuan.bench.core.results import ResultFileError
from zhisuan.bench.report.assemble import build_document
from zhisuan.bench.report.blocks import Figure
from zhisuan.bench.report.grouping import group_by_kind
from zhisuan.bench.report.to_html import render_html

# ---- loading ---------------------------------------------------------------------------------------


def test_load_reads_several_files_and_directories_in_order(tmp_path):
    write_results(tmp_path / "a" / "k.jsonl", kernel_results())
    write_results(tmp_path / "c.jsonl", collective_results())
    results = read_results([tmp_path / "a", tmp_path / "c.jsonl"])
    assert len(results) == len(kernel_results()) + len(collective_results())
    assert list(group_by_kind(results)) == ["kernel", "collective"]
    assert list(group_by_kind(collective_results() + validate_results() + [odd_kind_result()])) == [
        "validate",
        "collective",
        "odd",
    ]


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(ResultFileError, match="nothing.jsonl: no such file"):
        read_results([tmp_path / "nothing.jsonl"])
    with pytest.raises(ResultFileError, match="no result files given"):
        read_results([])
    with pytest.raises(ValueError, match="nothing to report"):
        build_document([])


# ---- the command -------------------------------------------------------------------------------


def test_cli_writes_both_forms(tmp_path, capsys):
    k = write_results(tmp_path / "k.jsonl", kernel_results()[:2])
    v = write_results(
        tmp_path / "v.jsonl", [r for r in validate_results() if r.op in ("integrity", "summary")]
    )
    html, md = tmp_path / "r" / "page.html", tmp_path / "r" / "page.md"
    assert main(["report", str(k), str(v), "--html", str(html), "--markdown", str(md)]) == 0
    out = capsys.readouterr().out
    assert "verdict: FAIL" in out and str(html) in out
    assert html.stat().st_size > 30_000 and (tmp_path / "r" / "page-figures").is_dir()


def test_cli_default_output_directory(tmp_path, monkeypatch):
    k = write_results(tmp_path / "k.jsonl", collective_results()[:4])
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(k)]) == 0
    assert (tmp_path / "zhisuan-report" / "report.html").is_file()
    assert (tmp_path / "zhisuan-report" / "report.md").is_file()


@pytest.mark.parametrize(
    "extra,message",
    [
        (["missing.jsonl"], "missing.jsonl: no such file"),
        (["K", "--out-dir", "d", "--html", "x.html"], "--out-dir writes both forms"),
        (["K", "--html", "."], "--html: . is a directory"),
    ],
)
def test_cli_mistakes_give_one_line_and_exit_2(tmp_path, monkeypatch, capsys, extra, message):
    write_results(tmp_path / "K", kernel_results()[:2])
    monkeypatch.chdir(tmp_path)
    assert main(["report", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_report_of_a_real_run(tmp_path):
    path = tmp_path / "run.jsonl"
    assert (
        main(["run", "matmul", "--backend", "torch", "--shape", "64", "--iters", "3", "--json", str(path)])
        == 0
    )
    results = read_results([path])
    html = render_html(build_document(results))
    assert results[0].run_id in html and results[0].device_name in html
    assert html.count("<img") == 2  # throughput and roofline
    assert "The bandwidth roof is not drawn" in html  # CPUs have no datasheet bandwidth
    assert isinstance(build_document(results).figures()[0], Figure)
