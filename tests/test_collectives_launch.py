"""Spawned ranks never outlive their run, and their shared memory never outlives them: SIGTERM or
SIGHUP to the parent of `collective --nproc`, a parent killed outright, a spawn that fails half-way,
a rank that hangs between rank 0 creating a /dev/shm segment and mapping it; --nproc bounded."""

import errno
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from launch_ranks import MODE_ENV, rank_pids

from zhisuan.bench.collectives import launch
from zhisuan.bench.collectives.__main__ import main as collective_main
from zhisuan.kernels._ext import cpu_ext_missing
from zhisuan.kernels.allreduce import shm

needs_shm = pytest.mark.skipif(cpu_ext_missing() is not None, reason=f"{cpu_ext_missing()}")
TESTS = str(Path(__file__).parent)


def _alive(pid: int) -> bool:
    """Running (a zombie that nobody reaps in a container counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _segments_of(parent: int) -> list[str]:
    return [n for n in os.listdir(shm.SEGMENT_DIR) if n.startswith(f"{shm.SEGMENT_PREFIX}-run{parent}x")]


def _start_long_run(tmp_path) -> tuple[subprocess.Popen, list[int]]:
    """`collective --nproc 2 --impl shm` past its first row (into a long size); (parent, rank pids)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "zhisuan.bench.collectives", "all_reduce", "--nproc", "2", "--impl", "shm",
         "-b", "8", "-e", "32M", "-f", "4194304", "-n", "3000", "-w", "1", "--json", str(tmp_path / "r.jsonl")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    deadline = time.monotonic() + 120
    while True:
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        if line.strip() and not line.startswith("#"):
            break
    ranks = list(rank_pids(proc.pid).values())
    assert len(ranks) == 2
    return proc, ranks


@needs_shm
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_sighup_to_the_parent_ends_every_rank(sig, tmp_path):
    proc, ranks = _start_long_run(tmp_path)
    try:
        proc.send_signal(sig)
        code = proc.wait(timeout=20)
    finally:
        proc.kill()
    assert code == 128 + sig
    assert f"{signal.Signals(sig).name} received; ranks stopped" in proc.stderr.read()
    assert not [pid for pid in ranks if _alive(pid)]
    assert not _segments_of(proc.pid)


@needs_shm
def test_ranks_of_a_killed_parent_end_themselves(tmp_path):
    proc, ranks = _start_long_run(tmp_path)
    proc.kill()  # nothing runs in the parent: the ranks see their pipe break
    proc.wait()
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in ranks) and time.monotonic() < deadline:
        time.sleep(0.2)
    still = [pid for pid in ranks if _alive(pid)]
    for pid in still:
        os.kill(pid, signal.SIGKILL)
    assert not still


def _spawn_env(mode: str) -> dict[str, str]:
    return {MODE_ENV: mode, "PYTHONPATH": os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")])}


@needs_shm
def test_a_rank_that_never_maps_the_segment_leaves_nothing_behind(capfd):
    code = launch.spawn_ranks("launch_ranks", 2, _spawn_env("shm-unmapped"), timeout_s=3)
    out, err = capfd.readouterr()
    assert code == 3 and "all waited 3 s in one collective call" in err, err
    # The segment was there while rank 1 hung (rank 0 waited for it to map it) ...
    line = next(line for line in out.splitlines() if line.startswith("rank 1: segment"))
    name = line.split()[3]
    assert line.endswith(": True") and name.startswith(f"/{shm.SEGMENT_PREFIX}-run{os.getpid()}x")
    # ... and is gone with the run.
    assert not os.path.exists(shm.SEGMENT_DIR + name) and not _segments_of(os.getpid())


def test_a_usage_error_inside_rank_0_ends_the_run_as_exit_2_not_a_crash(capfd):
    code = launch.spawn_ranks("launch_ranks", 2, _spawn_env("usage-error"), timeout_s=30)
    err = capfd.readouterr().err
    assert code == 2, err
    assert "zhisuan: error: rank 0 cannot use its input\n" in err
    assert "exit code 3" not in err and "Traceback" not in err


def test_a_spawn_that_fails_half_way_stops_the_ranks_it_started(monkeypatch, capsys):
    started, real_popen = [], subprocess.Popen

    def popen(*args, **kwargs):
        # What fork() answers under a process limit (ulimit -u), for the third rank.
        if len(started) == 2:
            raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(launch.subprocess, "Popen", popen)
    assert launch.spawn_ranks("launch_ranks", 4, _spawn_env("sleep"), timeout_s=30) == 3
    err = capsys.readouterr().err
    assert (
        "could not start rank 2 of 4 ([Errno 11] Resource temporarily unavailable); the 2 started are stopped"
        in err
    )
    assert len(started) == 2 and all(p.poll() is not None for p in started)


def test_nproc_beyond_what_the_host_runs_is_one_line_and_exit_2(capsys):
    limit = launch.RANKS_PER_CPU * len(launch.usable_cpus())
    assert collective_main(["--nproc", str(limit + 1)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"zhisuan: error: --nproc {limit + 1}: this host runs at most ")
        and err.count("\n") == 1
    )
    launch.check_nproc(2)  # what the tests run is within the bound


def test_remove_segments_removes_only_its_prefix(tmp_path, monkeypatch):
    monkeypatch.setattr(shm, "SEGMENT_DIR", str(tmp_path))
    for name in (
        "zhisuan-allreduce-run1x-7-a",
        "zhisuan-allreduce-run1x-8-b",
        "zhisuan-allreduce-run12x-7-c",
    ):
        (tmp_path / name).write_bytes(b"")
    assert sorted(shm.remove_segments("zhisuan-allreduce-run1x")) == [
        "zhisuan-allreduce-run1x-7-a",
        "zhisuan-allreduce-run1x-8-b",
    ]
    assert os.listdir(tmp_path) == ["zhisuan-allreduce-run12x-7-c"]
