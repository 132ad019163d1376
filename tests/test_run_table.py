"""The table `zhisuan run` prints keeps every figure whole, in a wide terminal and in 80 columns."""

import pytest
from rich.console import Console

from zhisuan.bench.core.results import Result
from zhisuan.bench.harness.table import results_table

TIMED = Result(
    kind="kernel", op="matmul", backend="cpp", shape={"M": 1024, "N": 97, "K": 1025}, dtype="fp32",
    device="cpu", device_name="cpu", median_s=8.11e-3, flops=2 * 1024 * 97 * 1025, flops_per_s=265e9,
    pct_peak=98.5, peak_status="derived", pct_measured_peak=75.5,
    check={"max_abs_err": 3.8e-5, "tolerance": 1.3e-4, "passed": True},
)  # fmt: skip
FAILED = Result(
    kind="kernel", op="attention", backend="triton",
    shape={"batch": 1, "heads": 32, "heads_kv": 8, "seq_q": 7, "seq_k": 7, "head_dim": 80, "causal": True},
    dtype="fp32", device="cpu", device_name="cpu", status="check-failed",
    error="max abs error 1 exceeds tolerance 0.1", check={"max_abs_err": 1.0, "tolerance": 0.1, "passed": False},
)  # fmt: skip


@pytest.mark.parametrize("width", [80, 100, 200])
def test_every_figure_is_whole_at_any_width(width):
    console = Console(width=width, record=True)
    console.print(results_table([TIMED, FAILED], title="zhisuan run", width=width))
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= width
    for figure in ("8.11 ms", "265 GFLOP/s", "98.5%", "75.5%", "3.8e-05", "FAIL", "check-failed"):
        assert figure in text, (width, figure)
    compact = width < 132
    assert ("benchmark" in text) == compact and ("% measured" in text) == (not compact)
