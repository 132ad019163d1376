"""The validation report's two charts (issue 14 §4): every check against its threshold basis, and the
matmul results on a roofline; with several ranks, beyond 60 bars, and on records missing fields.
(A real tiny `zhisuan validate` run's report: tests/test_validate_cli.py.)"""

from __future__ import annotations

import copy

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from report_data import H100, MATMUL_RULE, TRIAD_RULE, check_record, validate_results

from zhisuan.bench.core.results import Result
from zhisuan.bench.report import plots
from zhisuan.bench.report.assemble import build_document
from zhisuan.bench.report.blocks import Figure, Text
from zhisuan.bench.report.sections import validate_figures
from zhisuan.bench.report.verdict_bars import PASS_COLOUR, WARN_COLOUR, VerdictBar, verdict_bars


def _checks() -> list[Result]:
    return [r for r in validate_results() if r.op != "summary"]


def _bars_of(monkeypatch, checks) -> tuple[list[VerdictBar], list]:
    """The bars verdict_chart hands to the drawing, and the blocks it returns."""
    seen = []

    def spy(bars, **kwargs):
        seen.append(bars)
        return verdict_bars(bars, **kwargs)

    monkeypatch.setattr(validate_figures, "verdict_bars", spy)
    blocks = validate_figures.verdict_chart(checks)
    return (seen[0] if seen else []), blocks


def test_one_bar_per_check_dtype_backend_and_rank(monkeypatch):
    bars, (figure,) = _bars_of(monkeypatch, _checks())
    assert isinstance(figure, Figure) and figure.png[:4] == b"\x89PNG"
    labels = [b.label for b in bars]
    assert len(bars) == 17  # 4 ranks x (matmul, triad, integrity, burn-in) + the fleet's integrity
    assert labels[:4] == [
        f"matmul · bf16 · zhisuan · {h} r{r}"
        for h, r in [("node-a", 0), ("node-a", 1), ("node-b", 2), ("node-b", 3)]
    ]
    straggler = bars[labels.index("matmul · bf16 · zhisuan · node-b r2")]
    assert straggler.verdict == "WARN" and straggler.ratio == pytest.approx(712.0 / 989.4)
    assert (straggler.pass_at, straggler.warn_at) == (0.75, 0.70)
    assert straggler.text == "72.0% · 712 TFLOP/s"
    # a count judged against 0 has no fraction: a marker with its value in words, in its verdict
    odd = bars[labels.index("integrity · fp32 · zhisuan · node-b r3")]
    assert odd.ratio is None and odd.verdict == "FAIL" and odd.text == "2 differing repeats (PASS ≤ 0)"
    assert "fleet" in labels[labels.index("integrity · fp32 · zhisuan · fleet")]
    assert "Not drawn: h2d uint8 ×4 (SKIP: nothing measured)." in figure.caption


def test_the_chart_draws_verdict_colours_and_the_pass_and_warn_marks():
    bars = [
        VerdictBar("matmul · bf16", "PASS", 0.8, "80%", 0.75, 0.7),
        VerdictBar("triad · fp32", "WARN", 0.65, "65%", 0.8, 0.6),
        VerdictBar("copy · fp64", "FAIL", 9.3, "930%", 0.6, 0.4),  # beyond the cap: cut, hatched
        VerdictBar("integrity", "FAIL", None, "2 differing repeats"),
    ]
    (ax,) = verdict_bars(bars, title="checks").axes
    drawn = list(ax.patches)
    colours = {tuple(round(c, 3) for c in p.get_facecolor()[:3]) for p in drawn[:3]}
    assert len(colours) == 3  # PASS, WARN and FAIL differ
    assert drawn[2].get_width() == pytest.approx(400.0) and drawn[2].get_hatch() == "//"
    marks = {
        (round(float(seg[0][0]), 3), tuple(round(c, 3) for c in coll.get_color()[0][:3]))
        for coll in ax.collections
        for seg in coll.get_segments()
    }
    green, orange = (
        tuple(round(int(c[i : i + 2], 16) / 255, 3) for i in (1, 3, 5)) for c in (PASS_COLOUR, WARN_COLOUR)
    )
    assert {(75.0, green), (70.0, orange), (80.0, green), (60.0, orange), (40.0, orange)} <= marks
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["80%", "65%", "930%", "2 differing repeats"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[:3] == ["PASS", "WARN", "FAIL"] and "PASS fraction" in legend and "cut at 400%" in legend


def test_sixty_bars_keep_their_labels_apart():
    bars = [
        VerdictBar(f"stream-triad · fp64 · numba · node-{i // 8} r{i}", "PASS", 0.9, "90%", 0.6, 0.4)
        for i in range(60)
    ]
    fig = verdict_bars(bars, title="checks")
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    (ax,) = fig.axes
    boxes = sorted((label.get_window_extent(renderer) for label in ax.get_yticklabels()), key=lambda b: b.y0)
    assert len(boxes) == 60
    assert all(
        lower.y1 <= upper.y0 for lower, upper in zip(boxes, boxes[1:], strict=False)
    )  # no two labels overlap


def test_beyond_sixty_results_one_bar_per_check_with_its_spread(monkeypatch):
    many = []
    for node in range(16):
        for r in _checks():
            if r.extra["rank"] != -1:
                copied = copy.deepcopy(r)
                copied.extra.update(rank=r.extra["rank"] + 4 * node, host=f"node-{node}")
                many.append(copied)
    bars, (figure,) = _bars_of(monkeypatch, many)
    assert [b.label for b in bars] == [
        "matmul · bf16 · 64 results",
        "stream-triad · fp32 · 64 results",
        "integrity · fp32 · 64 results",
        "burn-in · bf16 · 64 results",
    ]
    matmul, _, integrity, _ = bars
    assert matmul.verdict == "WARN" and matmul.low == pytest.approx(712.0 / 989.4) and matmul.high < 0.82
    assert matmul.text.startswith("median 80.") and matmul.text.endswith("16 WARN, 48 PASS")
    assert integrity.verdict == "FAIL" and integrity.ratio is None and integrity.text == "16 FAIL, 48 PASS"
    assert "the median over devices" in figure.caption


def _matmul(host, rank, dtype, rate, **fields):
    r = check_record(
        "matmul",
        "Matmul throughput",
        "PASS",
        rate / 1e12,
        "TFLOP/s",
        host,
        rank,
        dtype=dtype,
        threshold=MATMUL_RULE,
    )
    n = 1025
    r.flops, r.bytes, r.flops_per_s = 2.0 * n**3, 3.0 * 2 * n * n, rate
    r.median_s, r.samples_s = r.flops / rate, [r.flops / rate]
    r.peak_flops, r.peak_status = 989.4e12, "datasheet"
    for key, value in fields.items():
        setattr(r, key, value)
    return r


def _triad(host, rank, gbps, **extra):
    return check_record(
        "stream-triad", "STREAM triad", "PASS", gbps, "GB/s", host, rank, threshold=TRIAD_RULE, **extra
    )


@pytest.fixture
def drawn_roofline(monkeypatch) -> dict:
    """What the validate section hands to plots.roofline: the points and the roofs."""
    seen, draw = {}, plots.roofline
    monkeypatch.setattr(
        plots, "roofline", lambda points, **kw: seen.update(points=points, **kw) or draw(points, **kw)
    )
    return seen


def test_roofline_under_the_runs_stream_and_the_datasheet(drawn_roofline):
    seen = drawn_roofline
    records = [_matmul("n", r, "bf16", 7.0e14 + r * 1e12, peak_bandwidth=3.35e12) for r in range(3)]
    records += [_triad("n", r, 2800.0 + 10 * r, past_cache=True) for r in range(3)]
    heading, figure = validate_figures.roofline(records)
    assert isinstance(figure, Figure) and heading.text == "Matmul on the roofline"
    (points,) = seen["points"]
    assert points.label == "matmul bf16 (3 devices)" and points.x == [pytest.approx(1025 / 3)] * 3
    memory = {b.label: b.y for b in seen["bandwidths"]}
    assert memory == {
        "measured STREAM triad 2.81 TB/s, median of 3 devices": 2.81e12,
        "datasheet bandwidth 3.35 TB/s": 3.35e12,
    }
    assert [r.label for r in seen["compute_roofs"]] == ["bf16 datasheet peak 989 TFLOP/s"]
    assert "memory roof (solid black): the fastest STREAM kernel of this run" in figure.caption
    assert "Not drawn" not in figure.caption


def test_cpu_roofline_names_the_measured_peak_and_a_stream_in_cache(drawn_roofline):
    seen = drawn_roofline
    matmul = _matmul(
        "vm", 0, "fp32", 5.2e10, peak_flops=1.57e11, peak_status="derived", measured_peak_flops=2.003e11
    )
    _, figure = validate_figures.roofline([matmul, _triad("vm", 0, 57.6, past_cache=False)])
    assert [r.label for r in seen["compute_roofs"]] == [
        "fp32 derived peak 157 GFLOP/s",
        "fp32 measured peak 200 GFLOP/s",
    ]
    assert [b.label for b in seen["bandwidths"]] == ["measured STREAM triad 57.6 GB/s; arrays in cache"]
    assert "a cache bandwidth, not the memory's" in figure.caption


def test_missing_fields_give_a_caption_not_a_crash():
    # no FLOP or byte counts (older records, a failed check): a line of text in place of the roofline
    heading, text = validate_figures.roofline([r for r in _checks() if r.op == "matmul"])
    assert isinstance(text, Text) and text.text.startswith(
        "No roofline: 4 of 4 matmul results carry no FLOP count"
    )
    # one plottable point, no peak, no STREAM, no datasheet bandwidth: the chart says what is not drawn
    bare = _matmul("vm", 0, "fp32", 5e10, peak_flops=None)
    broken = _matmul("vm", 1, "fp32", 5e10, bytes=None)
    _, figure = validate_figures.roofline([bare, broken])
    assert isinstance(figure, Figure)
    assert "Not drawn: no compute roof: no peak FLOP/s recorded" in figure.caption
    assert "Not drawn: no memory roof: no STREAM result in this run" in figure.caption
    assert "Not plotted: 1 of 2 matmul results carry no FLOP count" in figure.caption
    # verdict records stripped of their verdict, value and threshold, or carrying odd types
    stripped = [copy.deepcopy(r) for r in _checks()[:3]]
    stripped[0].extra = {}
    stripped[1].extra.update(threshold="60% of something", ratio="high", rank="?")
    stripped[2].status, stripped[2].extra["value"] = "error", None
    (figure,) = validate_figures.verdict_chart(stripped)
    assert isinstance(figure, Figure) and figure.png[:4] == b"\x89PNG"
    skipped_only = [r for r in _checks() if r.op == "h2d"]
    (text,) = validate_figures.verdict_chart(skipped_only)
    assert text.text == "No verdict chart: every check was skipped."


def test_the_validation_section_carries_both_charts():
    doc = build_document([_matmul("vm", 0, "bf16", 7e14), _triad("vm", 0, 2800.0)])
    assert [f.name for f in doc.figures()] == ["verdicts", f"roofline-validate-{H100}"]
