"""Run the planned stages in order, each as a subprocess under its deadline, recording as it goes.

After every stage: one `stage` record in devicecheck.jsonl and a fresh summary.md, so a call cut
short still returns what it found. Without a GPU, the GPU-only stages are recorded as
"skipped: no GPU" and the rest runs (the CPU dry run).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from zhisuan.bench.dev.devicecheck import files, summary, supervise
from zhisuan.bench.dev.devicecheck.plan import STAGES, Stage
from zhisuan.bench.dev.devicecheck.pytest_stream import RECORDS_ENV, STAGE_ENV

PACKAGE = "zhisuan.bench.dev.devicecheck"
# GPU tests that time things or start processes of their own: one at a time, never beside others.
SERIAL_TEST_FILES = ("tests/test_timing.py", "tests/test_collectives_gpu.py")
XDIST_WORKERS = 8
PARALLEL_TEST_TIMEOUT_S = 120
SERIAL_TEST_TIMEOUT_S = 45


@dataclass
class Call:
    out: Path
    work: Path
    sizes: str  # auto | quick | tiny
    build_mode: str  # build | verify


def gpu_present(out: Path) -> bool:
    """What the probe saw (torch sees a CUDA device); without its reading, nvidia-smi -L."""
    env_path = out / files.ENVIRONMENT
    if env_path.exists():
        return bool(json.loads(env_path.read_text()).get("devices"))
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _pytest(paths: list[str], *, parallel: bool) -> list[str]:
    # A test module that fails to import on this machine costs its own tests, not the stage's.
    argv = [sys.executable, "-m", "pytest", "-m", "gpu", *paths, "-v", "--tb=short", "-p", "no:cacheprovider",
            "--continue-on-collection-errors", "-p", f"{PACKAGE}.pytest_stream"]  # fmt: skip
    xdist = parallel and importlib.util.find_spec("xdist") is not None
    if xdist:
        argv += ["-n", str(min(XDIST_WORKERS, os.cpu_count() or 1)), "--dist", "load"]
    if importlib.util.find_spec("pytest_timeout") is not None:
        # Under xdist a hung test takes its worker down (thread method) and xdist starts another;
        # in one process the signal method fails the test and goes on.
        timeout = PARALLEL_TEST_TIMEOUT_S if parallel else SERIAL_TEST_TIMEOUT_S
        argv += ["--timeout", str(timeout), "--timeout-method", "thread" if xdist else "signal"]
    return argv


def stage_argv(stage: str, call: Call) -> list[str]:
    out, work, py = call.out, call.work, sys.executable
    if stage == "probe":
        return [py, "-m", f"{PACKAGE}.probe", "--out", str(out), "--work", str(work)]
    if stage == "build":
        return [py, "-m", f"{PACKAGE}.build", "--records", str(out / files.RECORDS), "--work", str(work),
                "--mode", call.build_mode]  # fmt: skip
    if stage == "gpu-tests":
        return _pytest(["tests", *(f"--ignore={path}" for path in SERIAL_TEST_FILES)], parallel=True)
    if stage == "serial-tests":
        return _pytest(list(SERIAL_TEST_FILES), parallel=False)
    if stage == "bench":
        return [py, "-m", f"{PACKAGE}.benchmarks", "--out", str(out / files.RESULTS), "--sizes", call.sizes]
    if stage == "collective":
        # Two processes on one GPU: NCCL refuses that, CUDA IPC does not (the group is gloo).
        return [py, "-m", "zhisuan.bench", "collective", "all_reduce", "--impl", "ipc", "--backend", "gloo",
                "--nproc", "2", "--device", "cuda", "-b", "64K", "-e", "256M", "-f", "4", "-T", "25",
                "--json", str(out / files.COLLECTIVE)]  # fmt: skip
    if stage == "validate":
        return [py, "-m", "zhisuan.bench", "validate", "--level", "quick", "--json", str(out / files.VALIDATE),
                "--report-dir", str(work / files.VALIDATE_REPORT)]  # fmt: skip
    if stage == "pack":
        return [py, "-m", f"{PACKAGE}.pack", "--out", str(out), "--work", str(work)]
    raise ValueError(f"no stage named {stage!r}")


def stage_env(stage: str, call: Call) -> dict:
    env = dict(
        os.environ, PYTHONUNBUFFERED="1", **{RECORDS_ENV: str(call.out / files.RECORDS), STAGE_ENV: stage}
    )
    tiny = call.sizes == "tiny" or (call.sizes == "auto" and not gpu_present(call.out))
    if stage == "validate" and tiny:
        env["ZHISUAN_VALIDATE_TEST_SIZES"] = "tiny"
    if stage == "build" and "ZHISUAN_CUDA_ARCHS" not in env:
        env_path = call.out / files.ENVIRONMENT
        archs = json.loads(env_path.read_text()).get("cuda_archs") if env_path.exists() else None
        if archs:
            env["ZHISUAN_CUDA_ARCHS"] = archs  # this GPU's target only (sm_90a on Hopper): half the nvcc time
    return env


def status_of(outcome: supervise.Outcome) -> str:
    if outcome.timed_out:
        return "timeout"
    return "ok" if outcome.returncode == 0 else f"failed (exit {outcome.returncode})"


def run_stage(stage: Stage, call: Call, deadlines: supervise.Deadlines, log) -> dict:
    allowed = deadlines.allowed(stage.cap_s)
    record = {"kind": "stage", "stage": stage.name, "cap_s": stage.cap_s, "allowed_s": round(allowed, 1)}
    if stage.gpu_only and not gpu_present(call.out):
        deadlines.spend(allowed, 0.0)
        return {**record, "status": "skipped: no GPU", "seconds": 0.0}
    argv = stage_argv(stage.name, call)
    banner = f"\n===== {stage.name}: cap {stage.cap_s} s, allowed {allowed:.0f} s: {' '.join(argv)}\n"
    log.write(banner.encode())
    log.flush()
    print(banner.strip(), flush=True)
    outcome = supervise.run(argv, timeout_s=allowed, stage_log=call.work / files.LOGS_DIR / f"{stage.name}.log",
                            combined_log=log, env=stage_env(stage.name, call), cwd=files.REPO_ROOT)  # fmt: skip
    deadlines.spend(allowed, outcome.seconds)
    return {**record, "status": status_of(outcome), "returncode": outcome.returncode,
            "seconds": round(outcome.seconds, 1), "tail": outcome.tail}  # fmt: skip


def run_call(call: Call, selected: tuple[str, ...]) -> int:
    call.out.mkdir(parents=True, exist_ok=True)
    call.work.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    deadlines = supervise.Deadlines()
    statuses = []
    with open(call.out / files.LOG, "ab") as log:
        for stage in STAGES:
            if stage.name not in selected:
                continue
            record = run_stage(stage, call, deadlines, log)
            files.append_record(call.out / files.RECORDS, record)
            statuses.append(record["status"])
            print(f"{stage.name}: {record['status']} in {record['seconds']:.0f} s", flush=True)
            summary.write(call.out, time.monotonic() - start)
    print(summary.render(call.out, time.monotonic() - start, short=True), flush=True)
    return 0 if all(s == "ok" or s.startswith("skipped") for s in statuses) else 1
