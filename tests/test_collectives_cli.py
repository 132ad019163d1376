"""`zhisuan collective` end to end, as a user runs it (python -m zhisuan.bench.collectives, --nproc 2): the
table and the JSON Lines file, the alpha-beta model on the measured sweep, --min-busbw failing, and
a killed or stopped rank ending the run with its name within the timeout, /dev/shm left clean."""

import math
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from launch_ranks import rank_pids

from zhisuan.bench.cli import main as zhisuan_main
from zhisuan.bench.collectives import launch, netmodel
from zhisuan.bench.core.result_files import read_results
from zhisuan.kernels._ext import cpu_ext_missing

needs_shm = pytest.mark.skipif(cpu_ext_missing() is not None, reason=f"{cpu_ext_missing()}")


def _collective(*argv, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "zhisuan.bench.collectives", *argv],
        capture_output=True,
        text=True,
        timeout=240,
        **kwargs,
    )


@needs_shm
def test_sweep_prints_the_table_writes_json_and_feeds_the_model(tmp_path, capsys):
    path = tmp_path / "sweep.jsonl"
    proc = _collective(
        "all_reduce", "--nproc", "2", "-b", "4K", "-e", "4M", "-f", "4", "-n", "10", "-w", "2",
        "--impl", "torch,shm", "--json", str(path), "--min-busbw", "1000",
    )  # fmt: skip
    # Every row is measured and correct, but the average busbw is below 1000 GB/s: the run fails.
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    assert "time   algbw   busbw #wrong" in out and "# Out of bounds values : 0 OK" in out
    assert "# --min-busbw 1000 GB/s: FAILED" in out
    rows = [line.split() for line in out.splitlines() if line and not line.startswith("#")]
    assert [(r[0], r[13]) for r in rows[:2]] == [("4096", "torch"), ("4096", "shm")]  # side by side
    assert len(rows) == 12 and all(
        r[8] == "0" and r[12] == "0" for r in rows
    )  # #wrong = 0, nccl-tests' places
    assert re.search(r"# Avg bus bandwidth    : [0-9.e+-]+ GB/s", out)

    results = read_results(path)
    assert len(results) == 24 and {r.backend for r in results} == {"gloo", "shm"}
    assert all(r.status == "ok" and r.kind == "collective" and r.shape["ranks"] == 2 for r in results)

    # The model, fitted on every other measured size of the shm sweep, predicts the others. How
    # close it comes depends on this host's noise (a 16K row once took 30x its neighbours): its
    # accuracy is tested on known data in test_netmodel.py, here only that a real sweep feeds it.
    shm_rows = [r for r in results if r.backend == "shm" and r.extra["in_place"]]
    sizes = [r.shape["bytes"] for r in shm_rows]
    errors = netmodel.held_out_errors(sizes, [r.median_s for r in shm_rows], 2)
    assert [size for size, _, _ in errors] == sorted(sizes)[1::2]
    assert all(math.isfinite(pred) and pred > 0 for _, _, pred in errors), errors

    assert zhisuan_main(["collective-model", str(path), "--backend", "shm", "--gpus", "8,1024,16384"]) == 0
    model = capsys.readouterr().out
    assert "held-out check" in model and "crossover sizes" in model
    assert re.search(r"^ +16384 +1G ", model, re.M) and "16384 GPUs: " in model
    assert zhisuan_main(["collective-model", str(path)]) == 0  # both sweeps, one after the other
    assert capsys.readouterr().out.count("# alpha-beta model fitted to") == 2


def test_unchecked_rows_are_marked_and_a_results_file_that_fills_up_is_exit_2(tmp_path, capsys):
    path = tmp_path / "unchecked.jsonl"
    quick = ["all_reduce", "--nproc", "2", "-b", "8", "-e", "64", "-f", "8", "-n", "3", "-w", "1"]
    proc = _collective(*quick, "-c", "0", "--json", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "# Out of bounds values : not checked (-c 0)" in proc.stdout
    rows = [line.split() for line in proc.stdout.splitlines() if line and not line.startswith("#")]
    assert len(rows) == 2 and all(r[8] == "N/A" and r[12] == "N/A" for r in rows)
    results = read_results(path)
    assert len(results) == 4 and all(r.status == "unchecked" and r.timed for r in results)
    assert all(r.check["checked"] is False and r.check["wrong"] is None for r in results)
    assert zhisuan_main(["collective-model", str(path)]) == 2  # a model needs checked numbers
    assert "no checked all_reduce results" in capsys.readouterr().err

    # rank 0's writes fail (a full disk): every rank stops, and the run ends with one line, exit 2
    full = _collective(*quick, "--json", "/dev/full")
    assert full.returncode == 2, full.stderr
    assert (
        full.stderr == "zhisuan: error: cannot write results to /dev/full: No space left on device; the "
        "results before this one are intact there\n"
    )


@pytest.mark.parametrize("launcher", ["torchrun", "slurm"])
def test_ranks_started_by_a_launcher_agree_and_rank_0_writes(launcher, tmp_path):
    path = tmp_path / "r.jsonl"
    argv = ["-m", "zhisuan.bench.collectives", "all_reduce", "-b", "8", "-e", "64", "-f", "8", "-n", "2", "-w", "0",
            "--json", str(path)]  # fmt: skip
    if launcher == "torchrun":
        # torchrun of this interpreter (a `torchrun` on PATH may belong to another Python)
        procs = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *argv],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]  # fmt: skip
    else:  # what srun gives each task (no MASTER_ADDR: the first host of the node list)
        port = str(launch.free_port())
        procs = [
            subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "SLURM_PROCID": str(r), "SLURM_LOCALID": str(r),
                                  "SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_TASKS_PER_NODE": "2",
                                  "SLURM_STEP_NODELIST": "localhost", "MASTER_PORT": port})
            for r in range(2)
        ]  # fmt: skip
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    stdout = "".join(out for out, _ in outputs)
    assert stdout.count("# Out of bounds values : 0 OK") == 1  # rank 0 reports, once
    rows = read_results(path)  # one file, from rank 0: 2 sizes x 2 placements
    assert len(rows) == 4 and all(r.shape["ranks"] == 2 and r.check["wrong"] == 0 for r in rows)


def _start_and_hit_rank_1(argv: list[str], sig: int, timeout_s: float) -> tuple[int, str, float]:
    """Start a long run, wait for its first table row, send sig to rank 1; (exit code, stderr, seconds)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "zhisuan.bench.collectives", *argv, "-T", str(timeout_s)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        deadline = time.monotonic() + 120
        while True:  # the first data row: the ranks are past set-up and into the long size
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line.strip() and not line.startswith("#"):
                break
        pid = rank_pids(proc.pid).get(1)
        assert pid is not None
        os.kill(pid, sig)
        hit = time.monotonic()
        code = proc.wait(timeout=timeout_s + 60)
        return code, proc.stderr.read(), time.monotonic() - hit
    finally:
        if proc.poll() is None:
            proc.kill()


LONG_RUN = ["all_reduce", "--nproc", "2", "-b", "8", "-e", "32M", "-f", "4194304", "-n", "3000", "-w", "1"]


@needs_shm
def test_a_killed_rank_is_named_and_dev_shm_stays_clean(tmp_path):
    before = {n for n in os.listdir("/dev/shm") if n.startswith("zhisuan-")}
    code, err, seconds = _start_and_hit_rank_1(
        [*LONG_RUN, "--impl", "shm", "--json", str(tmp_path / "r.jsonl")], signal.SIGKILL, timeout_s=20
    )
    assert code == 3, err
    assert "rank 1 died in all_reduce 33554432 B fp32 sum" in err and "killed by SIGKILL" in err
    assert seconds < 20  # well within the timeout: a death is seen at once
    assert {n for n in os.listdir("/dev/shm") if n.startswith("zhisuan-")} == before


def test_a_stopped_rank_is_named_within_the_timeout(tmp_path):
    code, err, seconds = _start_and_hit_rank_1(
        [*LONG_RUN, "--json", str(tmp_path / "r.jsonl")], signal.SIGSTOP, timeout_s=4
    )
    assert code == 3, err
    assert "rank 1 stopped responding in all_reduce 33554432 B" in err and "no heartbeat" in err
    assert 4 <= seconds < 4 + 10
