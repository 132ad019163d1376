"""zhisuan report: synthetic results of every kind (report_data.py) -> a Document -> HTML and Markdown."""

from __future__ import annotations

import base64
import re
import struct

import pytest
from report_data import (
    CPU,
    ERRORED_RATE,
    FAILED_MEDIAN_S,
    H100,
    T0,
    collective_results,
    kernel_results,
    odd_kind_result,
    validate_results,
)

from zhisuan.bench.core import units
from zhisuan.bench.core.results import Result
from zhisuan.bench.report import fmt
from zhisuan.bench.report.assemble import build_document
from zhisuan.bench.report.blocks import Banner, Heading, Table, Text
from zhisuan.bench.report.output import write_report
from zhisuan.bench.report.to_html import render_html


@pytest.fixture(scope="module")
def everything():
    return validate_results() + kernel_results() + collective_results()


@pytest.fixture(scope="module")
def full_doc(everything):
    return build_document(everything, ["all.jsonl"])


@pytest.fixture(scope="module")
def kernel_doc():
    return build_document(kernel_results())


@pytest.fixture(scope="module")
def full_html(full_doc):
    return render_html(full_doc)


# ---- the document ------------------------------------------------------------------------------


def test_validation_verdict_comes_first_with_its_counts(full_doc):
    banner = full_doc.blocks[0]
    assert isinstance(banner, Banner)
    assert banner.verdict == "FAIL"
    # the summary's counts: 4 ranks x 5 checks + 1 fleet-wide integrity record
    assert banner.counts == {"PASS": 15, "WARN": 1, "FAIL": 1, "SKIP": 4}
    assert banner.headline == "21 check results on 4 devices"
    assert "4 × NVIDIA H100 80GB HBM3 on 2 hosts (node-a, node-b)" in banner.details
    assert any("level burn-in" in d for d in banner.details)


def test_without_a_summary_the_verdict_is_the_worst_check():
    checks = [r for r in validate_results() if r.op == "matmul"]
    banner = build_document(checks).blocks[0]
    assert banner.verdict == "WARN" and any("no summary record" in d for d in banner.details)
    assert banner.counts == {"PASS": 3, "WARN": 1, "FAIL": 0, "SKIP": 0}


def test_test_sizes_and_interruptions_are_said_in_the_banner():
    results = [r for r in validate_results() if r.op in ("integrity", "summary")]
    for r in results:
        r.extra["sizes"] = "test"
    results[-1].extra["interrupted"] = True
    details = " ".join(build_document(results).blocks[0].details)
    assert "TEST SIZES" in details and "not a real measurement" in details and "interrupted" in details


def test_kernel_only_report_opens_with_a_status_summary(kernel_doc):
    doc = kernel_doc
    first = doc.blocks[0]
    assert isinstance(first, Text) and first.tone == "fail"
    assert "1 check-failed" in first.text and "1 error" in first.text
    headings = [b.text for b in doc.blocks if isinstance(b, Heading)]
    assert headings[:2] == ["Runs", "Kernels"] and headings[-1] == "Environment"
    assert "Roofline · fp32" in headings and "Roofline · bf16" in headings


def test_sections_follow_in_order_and_nothing_is_dropped(full_doc):
    top = [b.text for b in full_doc.blocks if isinstance(b, Heading) and b.level == 2]
    assert top == ["Runs", "Validation", "Kernels", "Collectives", "Environment"]
    doc = build_document([odd_kind_result()] + kernel_results()[:1])
    assert "Results of kind 'odd'" in [b.text for b in doc.blocks if isinstance(b, Heading)]


def test_stragglers_are_marked_in_the_table_and_the_bars(full_doc):
    tables = [b for b in full_doc.blocks if isinstance(b, Table)]
    device_cells = [row[0] for t in tables for row in t.rows if "⚑ straggler" in row[0].text]
    assert len(device_cells) == 1 and "node-b · rank 2" in device_cells[0].text
    assert device_cells[0].tone == "fail"
    names = [f.name for f in full_doc.figures()]
    assert "devices-matmul-bf16" in names and "burn-in-timeline" in names


# ---- HTML --------------------------------------------------------------------------------------


def test_html_is_self_contained(full_html):
    assert full_html.startswith("<!DOCTYPE html>")
    assert "<script" not in full_html and "<link" not in full_html
    assert not re.search(r"(src|href)=\"(?!data:)", full_html), "every src/href must be an embedded data URI"
    assert "http://" not in full_html and "https://" not in full_html


def test_html_images_are_embedded_pngs_of_the_stated_size(full_html, full_doc):
    images = re.findall(
        r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="[^"]+" width="(\d+)" height="(\d+)"',
        full_html,
    )
    assert len(images) == len(full_doc.figures()) >= 8
    for data, width, height in images:
        png = base64.b64decode(data)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", png[16:24]) == (int(width), int(height))
        assert int(width) > 600 and int(height) > 300


def test_html_verdict_precedes_every_table(full_html):
    verdict = full_html.index('class="banner fail"')
    assert verdict < full_html.index("<table")
    assert re.search(
        r'class="pill ok">15 PASS<.*class="pill warn">1 WARN<.*class="pill fail">1 FAIL<', full_html
    )


def test_html_states_units_devices_dates_versions_and_run_ids(full_html):
    for text in ("GFLOP/s", "TFLOP/s", "PFLOP/s", "GB/s", "µs", "KiB", "MiB", "°C", "MHz"):
        assert text in full_html, text
    for text in (CPU, H100, fmt.utc(T0), "2.13.0+cpu", "2.13.0+cu128", "570.86.15", "abc1234"):
        assert text in full_html, text
    for run_id in ("20260921-run-cpu", "20260921-run-gpu", "20260921-run-coll", "20260921-validate"):
        assert run_id in full_html
    assert "3.08 PFLOP/s" in full_html and "3.96 PFLOP/s" in full_html and "77.8%" in full_html


def test_html_shows_failures_as_failures_never_as_numbers(full_html):
    assert "check-failed: max abs error 0.31 exceeds tolerance 1e-05" in full_html
    assert "error: RuntimeError: CUDA error: illegal address" in full_html
    assert units.duration(FAILED_MEDIAN_S) not in full_html  # '42.4 ms'
    assert units.rate(ERRORED_RATE, "FLOP/s") not in full_html  # '777 GFLOP/s'
    assert "interpreted: no rate" in full_html
    assert "not averaged: 1 of 18 failed" in full_html  # the collective with wrong elements
    assert "memory-bandwidth roof" not in full_html or "The bandwidth roof is not drawn" in full_html


def test_html_escapes_recorded_text():
    results = kernel_results()[:1]
    results[0].error, results[0].status = "<b>oops</b> & more", "error"
    html = render_html(build_document(results))
    assert "&lt;b&gt;oops&lt;/b&gt; &amp; more" in html and "<b>oops</b>" not in html


# ---- Markdown and files ------------------------------------------------------------------------


def test_write_report_writes_html_markdown_and_figures(tmp_path, full_doc, monkeypatch):
    # write_report builds the document itself: hand it the one already built, to keep the test fast
    monkeypatch.setattr("zhisuan.bench.report.output.build_document", lambda results, sources: full_doc)
    paths = write_report([], tmp_path / "out", sources=["x.jsonl"])
    assert set(paths) == {"html", "markdown", "figures"}
    md = paths["markdown"].read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert links and all((paths["markdown"].parent / link).is_file() for link in links)
    assert sorted(p.name for p in paths["figures"].iterdir()) == sorted(link.split("/")[-1] for link in links)
    assert md.index("Verdict: FAIL") < md.index("| ")
    # the same headings in both forms
    html = paths["html"].read_text(encoding="utf-8")
    html_headings = re.findall(r"<h([2-4])>([^<]+)</h\1>", html)
    md_headings = re.findall(r"^(#{2,4}) (.+)$", md, flags=re.M)
    md_texts = [re.sub(r"\\(.)", r"\1", t) for _, t in md_headings]  # Markdown escapes read as the text
    assert [t for _, t in html_headings] == [t for t in md_texts if not t.startswith("❌ Verdict")]


def test_markdown_tables_keep_their_columns(tmp_path):
    results = kernel_results()[:4] + collective_results()[:2]
    results[0].status, results[0].error = "error", "a|b pipe"
    paths = write_report(results, tmp_path)
    md = paths["markdown"].read_text(encoding="utf-8")
    for block in re.findall(r"((?:^\|.*\|\n)+)", md, flags=re.M):
        rows = block.strip().split("\n")
        widths = {len(re.findall(r"(?<!\\)\|", row)) for row in rows}
        assert len(widths) == 1, rows
    assert "a\\|b pipe" in md


def test_threshold_rules_are_stated_with_their_basis(full_doc):
    texts = [b.text for b in full_doc.blocks if isinstance(b, Text)]
    matmul = next(t for t in texts if "989.4 TFLOP/s" in t)
    assert matmul.startswith(
        "Threshold: PASS when ≥ 75% of the basis, WARN when ≥ 70% of the basis, else FAIL."
    )
    assert "Why: H100 bf16 GEMM reaches about 80% of the datasheet." in matmul
    assert (
        "Thresholds: PASS when ≤ 0 differing repeats, else FAIL. / PASS when ≤ 0 ranks, else FAIL." in texts
    )
    assert "Threshold: No threshold applies." in texts  # the skipped host-to-device copies


def test_fleet_records_and_unreadable_telemetry(full_doc):
    cells = [c.text for b in full_doc.blocks if isinstance(b, Table) for row in b.rows for c in row]
    assert "fleet (4 ranks)" in cells
    assert "NVML gives no memory clock in this container" in cells
    assert any(c.startswith("clock 1980\u00a0MHz · temp 61\u00a0°C · power 655\u00a0W") for c in cells)
    ratios = [c for c in cells if c.endswith("%") and c.startswith("7")]  # 712 of 989.4 TFLOP/s = 72.0%
    assert "72.0%" in ratios


def test_a_group_with_no_rate_gets_a_table_and_no_chart():
    failed = [r for r in kernel_results() if r.backend in ("naive", "broken")]
    user = Result(
        kind="kernel",
        op="my_kernel",
        backend="user",
        shape={},
        dtype="",
        device="cpu",
        device_name=CPU,
        status="error",
        error="ValueError: bad input",
        run_id="r1",
        timestamp=T0,
    )
    doc = build_document(failed + [user])
    assert doc.figures() == []
    cells = [c.text for b in doc.blocks if isinstance(b, Table) for row in b.rows for c in row]
    assert cells.count("error") == 2 and "check-failed" in cells
    assert "AMD EPYC 9R14 96-Core Processor (cpu) · dtype not recorded" in [
        b.text for b in doc.blocks if isinstance(b, Heading)
    ]
