"""Cluster mode with 2 local ranks (gloo, --nproc 2, tiny test sizes, burn-in level so the burn-in's
window agreement runs too): rank 0 gathers one file, all_reduce busbw is measured across the ranks,
integrity is compared across ranks, and a rank forced to run at a third of its speed (the test hook
ZHISUAN_VALIDATE_TEST_SLOW_RANK=1) is flagged as the straggler."""

import os
import subprocess
import sys
from collections import defaultdict

from bench import specs
from bench.results import read_results
from bench.validate.context import SLOW_RANK_ENV
from bench.validate.levels import TEST_SIZES_ENV


def test_two_ranks_with_a_forced_straggler(tmp_path):
    path = tmp_path / "cluster.jsonl"
    env = dict(os.environ, **{TEST_SIZES_ENV: "tiny", SLOW_RANK_ENV: "1"})
    cmd = [sys.executable, "-m", "bench", "validate", "--nproc", "2", "--level", "burn-in", "--duration", "2s",
           "--timeout", "120", "--json", str(path), "--report-dir", str(tmp_path / "report")]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode in (0, 1), proc.stderr[-4000:]
    records = read_results(path)
    summary = records[-1]
    assert summary.op == "summary"
    verdicts = [r.extra["verdict"] for r in records]
    assert proc.returncode == (1 if "FAIL" in verdicts else 0)

    by_op = defaultdict(dict)
    for r in records[:-1]:
        by_op[(r.op, r.dtype, r.backend)][r.extra["rank"]] = r
    for key in [("matmul", "fp32"), ("stream-triad", "fp64"), ("attention", "fp32"), ("burn-in", "fp32")]:
        ranks = {
            rank for (op, dtype, _), per_rank in by_op.items() if (op, dtype) == key for rank in per_rank
        }
        assert ranks == {0, 1}, key

    all_reduce = [r for r in records if r.op == "all_reduce"]
    assert sorted(r.extra["rank"] for r in all_reduce) == [0, 1]
    for r in all_reduce:
        assert r.extra["verdict"] != "SKIP" and r.extra["wrong"] == 0 and r.extra["busbw_gbps"] > 0
        assert r.extra["bus_factor"] == 1.0 and r.extra["world"] == 2  # 2(n-1)/n at n = 2

    across = [r for r in records if r.op == "integrity" and r.extra["rank"] == -1]
    assert across and all(r.extra["verdict"] == "PASS" and r.extra["ranks"] == [0, 1] for r in across)

    burns = [r for r in records if r.op == "burn-in"]
    assert len(burns) == 2 and all(not r.extra["interrupted"] and r.extra["windows"] >= 1 for r in burns)
    # The ranks agree on when to stop: the same number of windows.
    assert burns[0].extra["windows"] == burns[1].extra["windows"]

    extra = summary.extra
    stragglers = extra["stragglers"]
    assert stragglers, "the slowed rank was not detected"
    # Matmul and burn-in run long enough per call for the factor of 3 to stand out from a shared
    # host's noise; the tiny STREAM and attention calls may flag either rank now and then.
    robust = {"matmul fp32", "matmul fp64", "burn-in fp32"}
    assert robust <= {s["check"] for s in stragglers if s["rank"] == 1}
    assert not [s for s in stragglers if s["rank"] == 0 and s["check"] in robust]
    assert all(s["deficit_pct"] > 5.0 for s in stragglers)
    assert extra["verdict"] in ("WARN", "FAIL")  # stragglers never leave a PASS
    assert [d["rank"] for d in extra["devices"]] == [0, 1]
    info = extra["cluster"]
    assert info["ranks"] == 2 and info["measured_ranks"] == 2
    # Two ranks on one host share its CPU: the nameplate counts the package once.
    peak = specs.detect("cpu").peak("fp32")
    if peak is not None:
        assert abs(info["nameplate_pflops"] - peak.value / 1e3) < 1e-12
    assert "stragglers" in proc.stdout
