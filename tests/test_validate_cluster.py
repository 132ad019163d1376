"""Cluster mode with 2 local ranks (gloo, --nproc 2, tiny test sizes, --level burn-in): rank 0 gathers
one file, all_reduce busbw is measured across the ranks, integrity is compared across ranks, a rank
forced to run at a third of its speed (the test hook ZHISUAN_VALIDATE_TEST_SLOW_RANK=1) is flagged
as the straggler, and Ctrl-C (to the whole process group, as a terminal sends it) during the burn-in
ends every rank at the same window, with the summary of what ran. Under torchrun, SIGTERM to the job
(what Slurm, a timeout or CI cancellation sends) reaches the ranks and leaves what they measured on
disk."""

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from launch_ranks import rank_pids, wait_for_burn_in

import zhisuan.bench
from zhisuan.bench.core import chips
from zhisuan.bench.core.result_files import read_results
from zhisuan.bench.validate.context import SLOW_RANK_ENV
from zhisuan.bench.validate.levels import TEST_SIZES_ENV


def run_until_burn_in_then_interrupt(path, tmp_path) -> subprocess.CompletedProcess:
    env = dict(os.environ, **{TEST_SIZES_ENV: "tiny", SLOW_RANK_ENV: "1"})
    cmd = [sys.executable, "-m", "zhisuan.bench", "validate", "--nproc", "2", "--level", "burn-in", "--duration", "10m",
           "--timeout", "120", "--json", str(path), "--report-dir", str(tmp_path / "report")]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        wait_for_burn_in(path, [proc])
        time.sleep(6.0)  # past the first 5-second window
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_two_ranks_with_a_forced_straggler_and_ctrl_c(tmp_path):
    path = tmp_path / "cluster.jsonl"
    proc = run_until_burn_in_then_interrupt(path, tmp_path)
    assert proc.returncode in (0, 1), proc.stderr[-4000:]
    assert "stopping after the current step" in proc.stderr and "Traceback" not in proc.stderr
    records = read_results(path)
    summary = records[-1]
    assert summary.op == "summary" and summary.extra["interrupted"]
    verdicts = [r.extra["verdict"] for r in records]
    assert proc.returncode == (1 if "FAIL" in verdicts else 0)

    ranks_of = defaultdict(set)
    for r in records[:-1]:
        ranks_of[(r.op, r.dtype)].add(r.extra["rank"])
    for key in [("matmul", "fp32"), ("stream-triad", "fp64"), ("attention", "fp32"), ("burn-in", "fp32")]:
        assert ranks_of[key] == {0, 1}, key

    all_reduce = [r for r in records if r.op == "all_reduce"]
    assert sorted(r.extra["rank"] for r in all_reduce) == [0, 1]
    for r in all_reduce:
        assert r.extra["verdict"] != "SKIP" and r.extra["wrong"] == 0 and r.extra["busbw_gbps"] > 0
        assert r.extra["bus_factor"] == 1.0 and r.extra["world"] == 2  # 2(n-1)/n at n = 2

    across = [r for r in records if r.op == "integrity" and r.extra["rank"] == -1]
    assert across and all(r.extra["verdict"] == "PASS" and r.extra["ranks"] == [0, 1] for r in across)

    burns = [r for r in records if r.op == "burn-in"]
    assert len(burns) == 2 and all(r.extra["interrupted"] and r.extra["windows"] >= 1 for r in burns)
    assert burns[0].extra["windows"] == burns[1].extra["windows"]  # every rank stopped at the same window

    stragglers = summary.extra["stragglers"]
    # Matmul and burn-in run long enough per call for the factor of 3 to stand out from a shared
    # host's noise; the tiny STREAM and attention calls may flag either rank now and then.
    robust = {"matmul fp32", "matmul fp64", "burn-in fp32"}
    assert robust <= {s["check"] for s in stragglers if s["rank"] == 1}
    assert not [s for s in stragglers if s["rank"] == 0 and s["check"] in robust]
    assert all(s["deficit_pct"] > 5.0 for s in stragglers)
    assert summary.extra["verdict"] in ("WARN", "FAIL")  # stragglers never leave a PASS
    assert [d["rank"] for d in summary.extra["devices"]] == [0, 1]
    info = summary.extra["cluster"]
    assert info["ranks"] == 2 and info["measured_ranks"] == 2
    # Two ranks on one host share its CPU: the nameplate counts the package once.
    peak = chips.detect("cpu").peak("fp32")
    if peak is not None:
        assert abs(info["nameplate_pflops"] - peak.value / 1e3) < 1e-12
    assert "stragglers" in proc.stdout and "interrupted" in proc.stdout


def test_sigterm_to_torchrun_ends_the_ranks_and_keeps_what_they_measured(tmp_path):
    path = tmp_path / "v.jsonl"
    env = dict(os.environ, **{TEST_SIZES_ENV: "tiny"})
    # torchrun of this interpreter (a `torchrun` on PATH may belong to another Python)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "zhisuan.bench", "validate", "--level", "burn-in", "--duration", "10m", "--timeout", "120",
           "--json", str(path), "--report-dir", str(tmp_path / "report")]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_burn_in(path, [proc])
        ranks = list(rank_pids(proc.pid).values())
        assert len(ranks) == 2
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert f"zhisuan validate: SIGTERM received; the results measured so far are in {path}" in err
    ours = str(Path(zhisuan.bench.__file__).parent)  # torchrun's own traceback may be there, never a rank's
    assert not [line for line in err.splitlines() if line.strip().startswith(f'File "{ours}')], err
    assert not [pid for pid in ranks if os.path.exists(f"/proc/{pid}")]
    records = read_results(path)
    ranks_of = defaultdict(set)
    for r in records:
        ranks_of[r.op].add(r.extra["rank"])
    assert all(ranks_of[op] == {0, 1} for op in ("matmul", "stream-triad", "attention", "integrity"))
    assert "burn-in" not in ranks_of and "summary" not in ranks_of  # ended in the burn-in, not concluded
