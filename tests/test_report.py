"""zhisuan report: synthetic results of every kind -> a Document -> HTML and Markdown, and the CLI.

The fixture builders here are also used by test_report_plots.py and test_report_chromium.py.
"""

from __future__ import annotations

import base64
import random
import re
import struct

import pytest

from zhisuan.bench.cli import main
from zhisuan.bench.core import units
from zhisuan.bench.core.result_files import ResultWriter, read_results
from zhisuan.bench.core.results import Result, ResultFileError
from zhisuan.bench.report import fmt
from zhisuan.bench.report.assemble import build_document
from zhisuan.bench.report.blocks import Banner, Figure, Heading, Table, Text
from zhisuan.bench.report.grouping import group_by_kind
from zhisuan.bench.report.html import render_html
from zhisuan.bench.report.output import write_report

T0 = 1_790_000_000.0  # 2026-09-21 UTC: a fixed date the report must print
CPU = "AMD EPYC 9R14 96-Core Processor"
H100 = "NVIDIA H100 80GB HBM3"
ENV_CPU = {
    "host": "ci-box",
    "os": "Linux-6.1-x86_64",
    "python": "3.11.7",
    "torch": "2.13.0+cpu",
    "triton": "3.9.0",
    "numpy": "2.4.6",
    "zhisuan": "0.1.0",
    "git_sha": "abc1234",
    "cpu": CPU,
    "cpu_cores": 2,
    "torch_threads": 2,
    "cuda": None,
    "gpus": [],
    "kernels_C_build": {"compiler": "12.2.0", "openmp": 201511},
}
ENV_GPU = {
    **ENV_CPU,
    "host": "gpu-node",
    "torch": "2.13.0+cu128",
    "cuda": "12.8",
    "gpus": [H100],
    "cuda_driver": "570.86.15",
}
FAILED_MEDIAN_S = 0.0424242  # a check-failed result's time: the report must never print it
ERRORED_RATE = 7.77e11  # an errored result's (bogus) rate: never printed either


def _kernel(rng, op, backend, n, *, device_name=CPU, device="cpu", dtype="fp32", peak=166.15e9, **fields):
    if op == "matmul":
        shape, flops, nbytes = {"M": n, "N": n, "K": n}, 2.0 * n**3, 3.0 * 4 * n * n
    else:
        shape = {
            "batch": 1,
            "heads": 8,
            "heads_kv": 8,
            "seq_q": n,
            "seq_k": n,
            "head_dim": 64,
            "causal": False,
        }
        flops, nbytes = 4.0 * 8 * n * n * 64, 4.0 * 4 * 8 * n * 64
    rate = min(peak * 0.8, flops / 2e-5) * rng.uniform(0.4, 0.9)
    median = flops / rate
    r = Result(
        kind="kernel",
        op=op,
        backend=backend,
        shape=shape,
        dtype=dtype,
        device=device,
        device_name=device_name,
        samples_s=[median * rng.uniform(0.97, 1.05) for _ in range(5)],
        median_s=median,
        iqr_s=median * 0.03,
        cv=rng.uniform(0.01, 0.05),
        flops=flops,
        bytes=nbytes,
        flops_per_s=rate,
        bytes_per_s=nbytes / median,
        peak_flops=peak,
        peak_status="derived" if device == "cpu" else "datasheet",
        pct_peak=100 * rate / peak,
        check={"max_abs_err": rng.uniform(1e-7, 1e-6), "tolerance": 1e-5, "passed": True},
        env=ENV_CPU if device == "cpu" else ENV_GPU,
        run_id="20260921-run-cpu" if device == "cpu" else "20260921-run-gpu",
        timestamp=T0 + rng.uniform(0, 50),
    )
    if device == "cpu":
        r.measured_peak_flops = 232.6e9
        r.pct_measured_peak = 100 * rate / r.measured_peak_flops
    else:
        r.peak_bandwidth = 3.35e12
        r.pct_peak_bandwidth = 100 * r.bytes_per_s / r.peak_bandwidth
    for key, value in fields.items():
        setattr(r, key, value)
    return r


def kernel_results(seed: int = 7) -> list[Result]:
    """CPU matmul/attention sweeps over two backends (sizes spanning decades), a check failure, a crash,
    an interpreted Triton result; and a GPU pair with a known bandwidth roof."""
    rng = random.Random(seed)
    out = [_kernel(rng, "matmul", b, n) for b in ("cpp", "torch") for n in (7, 97, 1025, 2048)]
    out += [_kernel(rng, "attention", b, n) for b in ("cpp", "torch") for n in (97, 1025)]
    out.append(
        _kernel(
            rng,
            "matmul",
            "naive",
            1025,
            status="check-failed",
            median_s=FAILED_MEDIAN_S,
            error="max abs error 0.31 exceeds tolerance 1e-05",
            check={"max_abs_err": 0.31, "tolerance": 1e-5, "passed": False},
        )
    )
    out.append(
        _kernel(
            rng,
            "matmul",
            "broken",
            97,
            status="error",
            error="RuntimeError: CUDA error: illegal address",
            flops_per_s=ERRORED_RATE,
            check={},
        )
    )
    out.append(_kernel(rng, "matmul", "triton", 97, interpreted=True, flops_per_s=None))
    out += [
        _kernel(rng, "matmul", b, 8192, device_name=H100, device="cuda:0", dtype="bf16", peak=989.4e12)
        for b in ("cublas", "triton")
    ]
    return out


def collective_results(seed: int = 11) -> list[Result]:
    """all_reduce fp32 over 2 ranks, gloo and shm, out-of-place and in-place, 8 B to 64 MiB; one wrong."""
    rng = random.Random(seed)
    out = []
    for backend, speed in (("gloo", 1.5e9), ("shm", 9e9)):
        for size in [8 * 8**i for i in range(8)] + [64 << 20]:
            for in_place in (False, True):
                time_s = 2e-6 * (30 if backend == "gloo" else 1) + size / speed * rng.uniform(0.9, 1.1)
                algbw = size / time_s
                wrong = 3 if (backend == "shm" and size == 4096 and in_place) else 0
                out.append(
                    Result(
                        kind="collective",
                        op="all_reduce",
                        backend=backend,
                        shape={"bytes": size, "count": max(size // 4, 1), "ranks": 2},
                        dtype="fp32",
                        device="cpu",
                        device_name=CPU,
                        status="ok" if wrong == 0 else "check-failed",
                        samples_s=[time_s] * 3,
                        median_s=time_s,
                        bytes=size,
                        bytes_per_s=algbw,
                        check={"wrong": wrong, "passed": wrong == 0},
                        extra={
                            "op": "sum",
                            "in_place": in_place,
                            "time_s": time_s,
                            "algbw": algbw,
                            "busbw": algbw,
                            "wrong": wrong,
                            "p50_s": time_s,
                            "p95_s": time_s * 1.2,
                            "max_s": time_s * 1.5,
                            "slowest_rank": 1,
                        },
                        env=ENV_CPU,
                        run_id="20260921-run-coll",
                        timestamp=T0 + 100,
                    )
                )
    return out


def _check(op, title, verdict, value, unit, host, rank, *, dtype="fp32", threshold=None, reason="", **extra):
    telemetry = {
        "sm_clock_mhz": 1980,
        "mem_clock_mhz": None,
        "temp_c": 61.0,
        "power_w": 655.0,
        "throttle": None,
        "ecc_corrected": 0,
        "ecc_uncorrected": 0,
        "source": "nvml",
        "unreadable": {"mem_clock_mhz": "NVML gives no memory clock in this container"},
    }
    reference = (threshold or {}).get("reference")
    ratio = value / reference if isinstance(value, float) and reference else None
    return Result(
        kind="validate",
        op=op,
        backend="zhisuan",
        shape={},
        dtype=dtype,
        device=f"cuda:{rank % 2}",
        device_name=H100,
        status="ok",
        extra={
            "check": title,
            "verdict": verdict,
            "value": value,
            "unit": unit,
            "threshold": threshold,
            "ratio": ratio,
            "reason": reason,
            "host": host,
            "rank": rank,
            "world": 4,
            "sizes": "real",
            "telemetry": telemetry,
            **extra,
        },
        env={**ENV_GPU, "host": host},
        run_id="20260921-validate",
        timestamp=T0 + 200 + abs(rank),
    )


MATMUL_RULE = {
    "pass": 0.75,
    "warn": 0.7,
    "basis": "fraction of datasheet bf16 989.4 TFLOP/s [datasheet]",
    "reference": 989.4,
    "compare": ">=",
    "source": "H100 bf16 GEMM reaches about 80% of the datasheet",
}
TRIAD_RULE = {
    "pass": 0.8,
    "warn": 0.6,
    "basis": "fraction of datasheet HBM3 3350 GB/s",
    "reference": 3350.0,
    "compare": ">=",
}
INTEGRITY_RULE = {
    "pass": 0.0,
    "warn": 0.0,
    "basis": "count of repeats differing in any bit from the first",
    "reference": None,
    "compare": "<=",
}
BURN_RULE = {
    "pass": 0.9,
    "warn": 0.85,
    "compare": ">=",
    "reference": 790.0,
    "basis": "fraction of the burst 790 TFLOP/s of this device",
}


def validate_results(seed: int = 5) -> list[Result]:
    """A 2-node, 4-GPU validation as `zhisuan validate` records it: a matmul straggler (WARN), an
    integrity FAIL, SKIPs without threshold, a fleet-wide record (rank -1), a burn-in timeline with
    throttling, and the summary record."""
    rng = random.Random(seed)
    ranks = [("node-a", 0), ("node-a", 1), ("node-b", 2), ("node-b", 3)]
    out = []
    for host, rank in ranks:
        value = 712.0 if rank == 2 else rng.uniform(780, 800)
        out.append(
            _check(
                "matmul",
                "Matmul throughput",
                "WARN" if rank == 2 else "PASS",
                value,
                "TFLOP/s",
                host,
                rank,
                dtype="bf16",
                threshold=MATMUL_RULE,
                reason="best cublas at 8192^3",
            )
        )
        out.append(
            _check(
                "stream-triad",
                "Memory bandwidth (triad)",
                "PASS",
                rng.uniform(2750, 2900),
                "GB/s",
                host,
                rank,
                dtype="fp32",
                threshold=TRIAD_RULE,
            )
        )
        mismatches = 2.0 if rank == 3 else 0.0
        out.append(
            _check(
                "integrity",
                "Numerical integrity",
                "FAIL" if mismatches else "PASS",
                mismatches,
                "differing repeats",
                host,
                rank,
                threshold=INTEGRITY_RULE,
                reason="iteration 17 differs from iteration 0" if mismatches else "3 repeats identical",
            )
        )
        out.append(
            _check(
                "h2d",
                "Host to device copy",
                "SKIP",
                None,
                "GB/s",
                host,
                rank,
                dtype="uint8",
                reason="pinned memory unavailable in this container",
            )
        )
        timeline = [
            {
                "t": 5.0 * i,
                "tflops": 790 - (25 if 6 <= i <= 8 else 0) + rng.uniform(-3, 3),
                "sm_clock_mhz": 1980 - (200 if 6 <= i <= 8 else 0),
                "temp_c": 55 + i * 1.1,
                "power_w": 690 + rng.uniform(-5, 5),
                "throttle": ["hw_thermal_slowdown"] if 6 <= i <= 8 else None,
            }
            for i in range(14)
        ]
        out.append(
            _check(
                "burn-in",
                "Burn-in (sustained matmul)",
                "PASS",
                772.0,
                "TFLOP/s",
                host,
                rank,
                dtype="bf16",
                threshold=BURN_RULE,
                timeline=timeline,
            )
        )
    out.append(
        _check(
            "integrity",
            "Numerical integrity across ranks",
            "PASS",
            0.0,
            "ranks",
            "node-a",
            -1,
            threshold={**INTEGRITY_RULE, "basis": "ranks whose product differs from the majority's"},
            reason="ranks [0, 1, 2, 3] computed identical bits",
        )
    )
    summary = Result(
        kind="validate",
        op="summary",
        backend="zhisuan",
        shape={},
        dtype="",
        device="cuda",
        device_name=H100,
        extra={
            "check": "Validation summary",
            "verdict": "FAIL",
            "level": "burn-in",
            "duration_s": 600.0,
            "interrupted": False,
            "margin_pct": 5.0,
            "counts": {"PASS": 15, "WARN": 1, "FAIL": 1, "SKIP": 4},
            "devices": [
                {
                    "host": h,
                    "rank": r,
                    "device": f"cuda:{r % 2}",
                    "device_name": H100,
                    "verdict": "FAIL" if r == 3 else "WARN" if r == 2 else "PASS",
                }
                for h, r in ranks
            ],
            "stragglers": [
                {
                    "check": "matmul bf16",
                    "host": "node-b",
                    "rank": 2,
                    "value": 712.0,
                    "median": 789.0,
                    "unit": "TFLOP/s",
                    "deficit_pct": 9.76,
                }
            ],
            "cluster": {
                "dtype": "bf16",
                "ranks": 4,
                "measured_ranks": 4,
                "achieved_pflops": 3.08,
                "nameplate_pflops": 3.958,
                "nameplate_reason": None,
                "nameplate_status": ["datasheet"],
                "pct_of_nameplate": 77.8,
            },
        },
        env={**ENV_GPU, "host": "node-a"},
        run_id="20260921-validate",
        timestamp=T0 + 900,
    )
    return out + [summary]


def _write(path, results):
    with ResultWriter(path) as writer:
        for r in results:
            writer.write(r)
    return path


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


# ---- loading ---------------------------------------------------------------------------------------


def test_load_reads_several_files_and_directories_in_order(tmp_path):
    _write(tmp_path / "a" / "k.jsonl", kernel_results())
    _write(tmp_path / "c.jsonl", collective_results())
    results = read_results([tmp_path / "a", tmp_path / "c.jsonl"])
    assert len(results) == len(kernel_results()) + len(collective_results())
    assert list(group_by_kind(results)) == ["kernel", "collective"]
    assert list(group_by_kind(collective_results() + validate_results() + [_odd_kind()])) == [
        "validate",
        "collective",
        "odd",
    ]


def _odd_kind() -> Result:
    return Result(
        kind="odd", op="x", backend="y", shape={"n": 1}, dtype="fp32", device="cpu", device_name=CPU
    )


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(ResultFileError, match="nothing.jsonl: no such file"):
        read_results([tmp_path / "nothing.jsonl"])
    with pytest.raises(ResultFileError, match="no result files given"):
        read_results([])
    with pytest.raises(ValueError, match="nothing to report"):
        build_document([])


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
    doc = build_document([_odd_kind()] + kernel_results()[:1])
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
    assert [t for _, t in html_headings] == [t for h, t in md_headings if not t.startswith("❌ Verdict")]


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


# ---- the command -------------------------------------------------------------------------------


def test_cli_writes_both_forms(tmp_path, capsys):
    k = _write(tmp_path / "k.jsonl", kernel_results()[:2])
    v = _write(tmp_path / "v.jsonl", [r for r in validate_results() if r.op in ("integrity", "summary")])
    html, md = tmp_path / "r" / "page.html", tmp_path / "r" / "page.md"
    assert main(["report", str(k), str(v), "--html", str(html), "--markdown", str(md)]) == 0
    out = capsys.readouterr().out
    assert "verdict: FAIL" in out and str(html) in out
    assert html.stat().st_size > 30_000 and (tmp_path / "r" / "page-figures").is_dir()


def test_cli_default_output_directory(tmp_path, monkeypatch):
    k = _write(tmp_path / "k.jsonl", collective_results()[:4])
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
    _write(tmp_path / "K", kernel_results()[:2])
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
