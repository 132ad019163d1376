"""The report's charts: axes in the right scale with units, reference lines and roofs where known,
stragglers and throttling marked, and PNG output that is a real, non-blank image."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib import image as mpimg

from zhisuan.bench.report import plots


def _series(xs, ys, label="cpp"):
    return plots.Series(label, list(xs), list(ys))


def _line_texts(ax) -> list[str]:
    return [line.get_label() for line in ax.get_lines()]


def test_sizes_spanning_decades_get_log_axes_with_plain_tick_labels():
    fig = plots.line_chart(
        [_series([686, 1.8e6, 2.1e9, 1.7e10], [2e7, 6e10, 9e10, 1.07e11])],
        title="matmul",
        xlabel="work per call (FLOP)",
        ylabel="achieved",
        yunit="FLOP/s",
        xunit="FLOP",
        refs=[plots.RefLine("derived peak 166 GFLOP/s", 1.66e11)],
    )
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_xlabel() == "work per call (FLOP) (log scale)"
    assert ax.get_ylabel() == "achieved (GFLOP/s), log scale"
    assert ax.xaxis.get_major_formatter()(1e9, 0) == "1 GFLOP"
    assert "derived peak 166 GFLOP/s" in _line_texts(ax)
    peak = next(line for line in ax.get_lines() if line.get_label().startswith("derived peak"))
    assert peak.get_ydata()[0] == pytest.approx(166.0)  # drawn in the axis unit (GFLOP/s)


def test_a_narrow_range_stays_linear_from_zero():
    fig = plots.line_chart(
        [_series([97, 120, 150], [5.1e10, 5.6e10, 6.2e10])],
        title="t",
        xlabel="x",
        ylabel="achieved",
        yunit="FLOP/s",
        xunit="FLOP",
    )
    (ax,) = fig.axes
    assert ax.get_xscale() == "linear" and ax.get_yscale() == "linear"
    assert ax.get_ylim()[0] == 0 and ax.get_ylabel() == "achieved (GFLOP/s)"


def test_message_sizes_use_a_base_2_axis_in_binary_units():
    sizes = [8 * 8**i for i in range(8)]
    fig = plots.line_chart(
        [_series(sizes, [s * 1e3 for s in sizes], "gloo out-of-place")],
        title="busbw",
        xlabel="message size",
        ylabel="busbw",
        yunit="B/s",
        bytes_axis=True,
    )
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and ax.xaxis.get_transform().base == 2
    assert ax.xaxis.get_major_formatter()(65536, 0) == "64 KiB"


def test_roofline_draws_the_bandwidth_roof_up_to_the_ridge():
    peak, bandwidth = 989.4e12, 3.35e12
    fig = plots.roofline(
        [_series([1365.0], [6.6e14], "matmul · cublas")],
        title="roofline",
        compute_roofs=[plots.RefLine("datasheet peak", peak)],
        bandwidths=[plots.RefLine("bandwidth roof", bandwidth, plots.BANDWIDTH_COLOUR, "-")],
    )
    (ax,) = fig.axes
    roof = next(line for line in ax.get_lines() if line.get_label() == "bandwidth roof")
    x, y = roof.get_data()
    assert x[-1] == pytest.approx(peak / bandwidth)  # the ridge point, in FLOP/byte
    assert y[-1] == pytest.approx(peak / 1e12)  # meets the compute roof (TFLOP/s on this axis)
    assert ax.get_xscale() == ax.get_yscale() == "log"
    low, high = ax.get_ylim()
    assert high / low >= 100  # room for two labelled decades


def test_roofline_without_a_bandwidth_says_so():
    fig = plots.roofline(
        [_series([16.0, 170.0], [5.6e10, 9.1e10])],
        title="roofline",
        compute_roofs=[plots.RefLine("derived peak", 1.66e11)],
        notes=["memory-bandwidth roof unknown: no datasheet bandwidth for AMD EPYC"],
    )
    (ax,) = fig.axes
    assert not any("bandwidth" in label for label in _line_texts(ax))
    assert any("memory-bandwidth roof unknown" in t.get_text() for t in ax.texts)


def test_bars_colour_verdicts_and_hatch_stragglers():
    fig = plots.bar_chart(
        ["node-a/r0", "node-a/r1", "node-b/r2"],
        [792.0, 799.0, 640.0],
        title="matmul per device",
        ylabel="TFLOP/s",
        verdicts=["PASS", "PASS", "WARN"],
        flagged={2: "−18.9%"},
        refs=[plots.RefLine("fleet median", 792.0)],
    )
    (ax,) = fig.axes
    bars = ax.patches[:3]
    assert [b.get_hatch() for b in bars] == [None, None, "//"]
    assert bars[2].get_facecolor() != bars[0].get_facecolor()
    assert [t.get_text() for t in ax.texts] == ["−18.9%"]
    assert ax.get_ylim()[0] == 0


def test_throttled_spans_and_timeline_panels():
    track = plots.Track(
        "node-a rank 0",
        [0, 5, 10, 15, 20],
        {"tflops": [790, 760, 750, 789, 791], "temp_c": [55, 70, 78, 66, 60]},
        throttled=[False, True, True, False, True],
    )
    assert plots._throttled_spans(track) == [(5, 15), (20, 20)]
    fig = plots.timeline_chart([track], title="burn-in")
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == ["throughput (TFLOP/s)", "temperature (°C)"]  # no clock or power was read: no panel
    assert fig.axes[-1].get_xlabel() == "time since start (s)"


def test_to_png_gives_a_decodable_non_blank_image():
    fig = plots.line_chart(
        [_series([1, 7, 97, 1025], [3.0, 5.0, 8.0, 9.0])], title="t", xlabel="x (B)", ylabel="y", yunit="B/s"
    )
    png = plots.to_png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = mpimg.imread(io.BytesIO(png), format="png")
    assert pixels.shape[:2] == (round(plots.HEIGHT_IN * plots.DPI), round(plots.WIDTH_IN * plots.DPI))
    assert float((pixels[:, :, :3] < 0.9).any(axis=2).mean()) > 0.01  # lines, labels, text drawn


def test_colours_are_stable_per_name():
    first = plots.colours(["torch", "cpp", "triton"])
    assert first == plots.colours(["triton", "cpp", "torch", "cpp"])
    assert len(set(first.values())) == 3
    assert np.all([c.startswith("#") for c in first.values()])
