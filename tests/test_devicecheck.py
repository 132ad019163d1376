"""zhisuan.bench.dev.devicecheck, the GPU session's one call, in every part that runs without a GPU:
the plan fits the call; the command fits the device tool, imports this tree with nothing
installed, and is the README's; a stage is stopped at its cap with its output kept; the pack
leaves at most 8 files and loses nothing; test outcomes stream as they come (with and without
xdist); a missing extension is said loudly; the targets are judged from results; and the whole
call runs as a CPU dry run."""

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import time

import pytest
import torch

from zhisuan.bench.core.results import Result
from zhisuan.bench.dev.devicecheck import (
    benchmarks,
    build,
    files,
    pack,
    plan,
    probe,
    summary,
    supervise,
    targets,
)
from zhisuan.bench.dev.devicecheck.pytest_stream import RECORDS_ENV, STAGE_ENV

ROOT = files.REPO_ROOT


def test_the_plan_fits_the_call():
    assert plan.total_cap_s() <= plan.TOTAL_CAP_S <= plan.CALL_TIMEOUT_S - 60
    assert len(set(plan.STAGE_NAMES)) == len(plan.STAGES)
    assert len(files.KEPT) <= files.MAX_FILES_BACK


def test_plan_prints_one_line_per_stage_and_the_total(capsys):
    from zhisuan.bench.dev.devicecheck.__main__ import main

    assert main(["--plan"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(plan.STAGES) + 1
    for stage, line in zip(plan.STAGES, lines, strict=False):
        assert line.startswith(stage.name) and f"cap {stage.cap_s:>3} s" in line
    total = int(lines[-1].removeprefix("total: ").removesuffix(" s"))
    assert total == sum(s.cap_s for s in plan.STAGES) and total <= 540


def test_the_command_fits_the_tool_and_is_the_readmes(capsys):
    from zhisuan.bench.dev.devicecheck.__main__ import main

    command = plan.device_command()
    assert len(command) <= plan.MAX_COMMAND_CHARS
    assert main(["--print-command"]) == 0
    assert capsys.readouterr().out.strip() == command
    readme = (ROOT / "README.md").read_text()
    assert command in readme, "README's GPU section must show plan.device_command() verbatim"
    assert all(line in readme for line in plan.plan_lines()), "README's GPU section must show --plan's output"


def test_the_command_imports_this_tree_with_nothing_installed():
    # -S: no site-packages, so no editable install either: only the command's link can be found.
    command = plan.device_command(python=f'"{sys.executable}" -S', args="--plan")
    proc = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"total: {plan.total_cap_s()} s"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_a_stage_is_stopped_at_its_cap_with_its_output_kept(tmp_path):
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        "print('first line', child.pid, flush=True)\n"
        "time.sleep(60)\n"
        "print('never printed', flush=True)\n"
    )
    combined = tmp_path / "all.log"
    start = time.monotonic()
    with open(combined, "ab") as log:
        outcome = supervise.run([sys.executable, "-c", script], timeout_s=3.0, stage_log=tmp_path / "logs" / "s.log",
                                combined_log=log, env=dict(os.environ), cwd=tmp_path)  # fmt: skip
    assert outcome.timed_out and outcome.returncode is None
    assert time.monotonic() - start < 3.0 + supervise.GRACE_S + 5
    for path in (combined, tmp_path / "logs" / "s.log"):
        text = path.read_text()
        assert "first line" in text and "never printed" not in text
    grandchild = int(outcome.tail[0].split()[-1])
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(grandchild), "the stage's own children must be stopped with it"


def test_a_stage_that_exits_keeps_its_exit_code(tmp_path):
    with open(tmp_path / "all.log", "ab") as log:
        outcome = supervise.run([sys.executable, "-c", "print('x'); raise SystemExit(3)"], timeout_s=30,
                                stage_log=tmp_path / "s.log", combined_log=log, env=dict(os.environ), cwd=tmp_path)  # fmt: skip
    assert (outcome.returncode, outcome.timed_out, outcome.tail) == (3, False, ["x"])


def test_unused_time_carries_forward_never_beyond_the_plan():
    deadlines = supervise.Deadlines()
    assert deadlines.allowed(20) == 20
    deadlines.spend(20, 8)
    assert deadlines.allowed(100) == 112
    deadlines.spend(112, 112.5)  # a stage stopped just past its deadline leaves nothing
    assert deadlines.allowed(150) == 150


def _fill_out_and_work(out, work):
    out.mkdir()
    for name in files.KEPT:
        if name != files.TARBALL:
            (out / name).write_text(f"{name}\n")
    (out / "stray.txt").write_text("stray")
    (out / "folder" / "deeper").mkdir(parents=True)
    (out / "folder" / "deeper" / "inner.txt").write_text("inner")
    (work / "logs").mkdir(parents=True)
    for stage in ("probe", "build", "bench"):
        (work / "logs" / f"{stage}.log").write_text(f"{stage} output\n")
    (work / "validate-report" / "a" / "b").mkdir(parents=True)
    (work / "validate-report" / "a" / "b" / "report.html").write_text("<html/>")


def test_pack_leaves_at_most_8_files_and_loses_nothing(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    _fill_out_and_work(out, work)
    big = os.urandom(3 << 20).hex().encode()  # 6 MiB of log: over what stays in out
    (out / files.LOG).write_bytes(big)
    packed = pack.pack(out, work)
    back = list(out.iterdir())
    assert len(back) <= files.MAX_FILES_BACK and all(p.is_file() for p in back)
    assert {p.name for p in back} == set(files.KEPT)
    with tarfile.open(out / files.TARBALL) as tar:
        names = set(tar.getnames())
        full_log = tar.extractfile(files.LOG).read()
    expected = {f"work/{p.relative_to(work)}" for p in work.rglob("*") if p.is_file()}
    assert expected <= names and "work/out-extra/stray.txt" in names
    assert "work/out-extra/folder/deeper/inner.txt" in names
    assert set(files.KEPT) - {files.TARBALL} <= names
    assert full_log == big and packed.left_out == []
    kept_log = (out / files.LOG).read_bytes()
    assert len(kept_log) < pack.LOG_KEEP_BYTES + 200 and b"bytes cut here" in kept_log
    assert kept_log.startswith(big[:1000]) and kept_log.endswith(big[-1000:])


def test_pack_names_what_is_too_large_to_come_back(tmp_path, monkeypatch):
    out, work = tmp_path / "out", tmp_path / "work"
    _fill_out_and_work(out, work)
    (work / "huge.bin").write_bytes(os.urandom(400_000))  # incompressible
    monkeypatch.setattr(pack, "MAX_FILE_BYTES", 200_000)
    packed = pack.pack(out, work)
    assert packed.left_out == ["work/huge.bin (400000 bytes)"]
    with tarfile.open(out / files.TARBALL) as tar:
        assert "work/huge.bin" in tar.extractfile(pack.LEFT_OUT).read().decode()
        assert "work/logs/probe.log" in tar.getnames()


TESTS_TO_STREAM = """
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")

def test_passes():
    assert sum([1, 7, 97]) == 105

def test_fails():
    assert 1 + 1 == 3, "arithmetic"

def test_skips():
    pytest.skip("no GPU here")

def test_errors(broken):
    pass
"""


@pytest.mark.parametrize("workers", [0, 2])
def test_test_outcomes_stream_as_they_come(tmp_path, workers):
    if workers and importlib.util.find_spec("xdist") is None:
        pytest.skip("pytest-xdist is not installed")
    (tmp_path / "test_sample.py").write_text(TESTS_TO_STREAM)
    (tmp_path / "test_unimportable.py").write_text("import a_module_this_machine_lacks\n")
    records = tmp_path / "records.jsonl"
    env = dict(os.environ, **{RECORDS_ENV: str(records), STAGE_ENV: "gpu-tests"})
    argv = [sys.executable, "-m", "pytest", "-p", "zhisuan.bench.dev.devicecheck.pytest_stream", "-p", "no:cacheprovider",
            "-q", "--continue-on-collection-errors", str(tmp_path), *(["-n", str(workers)] if workers else [])]  # fmt: skip
    subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, timeout=120)
    collected = files.read_records(records, "collected")
    assert len(collected) == 1 and len(collected[0]["nodeids"]) == 4
    outcomes = {r["nodeid"].split("::")[-1]: r for r in files.read_records(records, "test")}
    assert {name: r["outcome"] for name, r in outcomes.items()} == {
        "test_passes": "passed", "test_fails": "failed", "test_skips": "skipped", "test_errors": "error",
        "test_unimportable.py": "error",
    }  # fmt: skip
    assert "a_module_this_machine_lacks" in outcomes["test_unimportable.py"]["message"]
    assert "arithmetic" in outcomes["test_fails"]["message"]
    assert "no GPU here" in outcomes["test_skips"]["message"]
    assert "fixture broke" in outcomes["test_errors"]["message"]
    assert {r["stage"] for r in outcomes.values()} == {"gpu-tests"}


def test_a_missing_or_foreign_extension_is_said_loudly(tmp_path, monkeypatch):
    monkeypatch.delenv("ZHISUAN_SKIP_CUDA", raising=False)
    monkeypatch.setattr(build.shutil, "which", lambda tool: "/usr/bin/" + tool)  # as on the GPU machine
    missing = build.judge(
        "_cuda", {"error": "ModuleNotFoundError: no _cuda"}, built_after=None, wanted_arch="90a"
    )
    assert (missing["status"], missing["reason"]) == ("missing", "ModuleNotFoundError: no _cuda")
    foreign = build.judge("_C", {"file": str(tmp_path / "_C.so")}, built_after=None, wanted_arch=None)
    (tmp_path / "_C.so").write_bytes(b"")
    assert foreign["status"] == "foreign"
    own = sorted((ROOT / "kernels").glob("_C.*.so"))
    if own:
        stale = build.judge("_C", {"file": str(own[0])}, built_after=time.time() + 60, wanted_arch=None)
        assert stale["status"] == "stale"
    monkeypatch.setenv("ZHISUAN_SKIP_CUDA", "1")
    skipped = build.judge("_cuda", {"error": "ModuleNotFoundError"}, built_after=None, wanted_arch=None)
    assert (skipped["status"], skipped["reason"]) == ("not-expected", "ZHISUAN_SKIP_CUDA=1")
    text = "\n".join(summary.build_section([missing, skipped]))
    assert "**BUILD FAILED: zhisuan.kernels.\\_cuda is missing: ModuleNotFoundError: no \\_cuda**" in text
    assert text.count("BUILD FAILED") == 1


def test_hopper_is_built_for_its_a_target():
    assert probe.cuda_archs("9.0") == "90a"
    assert probe.cuda_archs("8.0") == "80"
    assert probe.cuda_archs(None) is None


def test_the_quick_set_covers_the_gpu_issues_table():
    jobs = benchmarks.jobs("quick")
    matmul_dtypes = {d for op, _, dtypes, _ in jobs if op == "matmul" for d in dtypes}
    assert matmul_dtypes == {"bf16", "fp16", "fp8e4m3", "fp32"}
    assert {"triton", "cpp", "cupy", "torch"} <= set(jobs[0][3])
    assert {"triton", "sdpa-flash", "sdpa-cudnn"} <= {
        b for op, _, _, bs in jobs if op == "attention" for b in bs
    }
    assert any(op == "attention-train" for op, *_ in jobs)
    assert [s["M"] for s in jobs[0][1]] == [8192, 4096]
    assert len(jobs[-1][1]) == 10  # the two LLM suites' projections
    assert all(
        s["seq_q"] >= 4096 and s["head_dim"] == 128
        for op, shapes, *_ in jobs
        if op == "attention"
        for s in shapes
    )


def result(op, backend, shape, median_s, dtype="bf16"):
    flops = 2.0 * shape["M"] * shape["N"] * shape["K"]
    return Result(kind="kernel", op=op, backend=backend, shape=shape, dtype=dtype, device="cuda:0",
                  device_name="NVIDIA H100 80GB HBM3", median_s=median_s, flops=flops, flops_per_s=flops / median_s,
                  check={"max_abs_err": 0.01, "tolerance": 0.05, "passed": True})  # fmt: skip


def test_targets_are_judged_from_the_results():
    s8192, s4096 = {"M": 8192, "N": 8192, "K": 8192}, {"M": 4096, "N": 4096, "K": 4096}
    llm = {"M": 4096, "N": 6144, "K": 4096, "name": "qkv_proj"}
    results = [
        result("matmul", "triton", s8192, 1.8e-3),  # 611 TFLOP/s: below the 700 target
        result("matmul", "torch", s8192, 1.7e-3),
        result("matmul", "cpp", s4096, 0.4e-3),
        result("matmul", "torch", s4096, 0.2e-3),  # ours at half cuBLAS's speed
        result("matmul", "triton", llm, 0.1e-3),
        result("matmul", "torch", llm, 0.097e-3),
    ]
    lines = targets.target_lines(results)
    assert "- Triton matmul at 8192³ bf16: 611 TFLOP/s (MISSED; target 700 TFLOP/s)" in lines
    assert "- CUDA C++ matmul vs cuBLAS at 4096³: 0.5× (MISSED; target 0.6×)" in lines
    assert "- Triton matmul, geometric mean over the LLM shapes vs cuBLAS: 0.97× (met; target 0.95×)" in lines
    assert "- Triton attention forward+backward vs SDPA flash (worst shape): not measured" in lines


def test_out_must_be_empty_and_work_outside_it(tmp_path, capsys):
    from zhisuan.bench.dev.devicecheck.__main__ import main

    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "new"), "--work", str(tmp_path / "new" / "work")])
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "new"), "--stages", "probe,nonsense"])
    assert "nonsense" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="the dry run is the call on a machine without a GPU")
def test_the_whole_call_as_a_cpu_dry_run(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    argv = [sys.executable, "-m", "zhisuan.bench.dev.devicecheck", "--out", str(out), "--work", str(work),
            "--build-mode", "verify"]  # fmt: skip
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=400)
    stages = {r["stage"]: r for r in files.read_records(out / files.RECORDS, "stage")}
    assert list(stages) == list(plan.STAGE_NAMES), proc.stdout[-3000:] + proc.stderr[-3000:]
    for stage in plan.STAGES:
        if stage.gpu_only:
            assert stages[stage.name]["status"] == "skipped: no GPU"
        else:
            assert stages[stage.name]["returncode"] is not None, stage.name  # ran, and within its cap
    for name in ("probe", "bench", "pack"):
        assert stages[name]["status"] == "ok", stages[name]
    env = json.loads((out / files.ENVIRONMENT).read_text())
    assert env["devices"] == [] and env["packages"]["torch"]
    results = summary.load_results(out / files.RESULTS)
    assert results and all(r.device == "cpu" and r.check["passed"] for r in results if r.status == "ok")
    assert {r.op for r in results} >= {"matmul", "attention"}
    back = list(out.iterdir())
    assert len(back) <= files.MAX_FILES_BACK and all(p.is_file() for p in back)
    with tarfile.open(out / files.TARBALL) as tar:
        names = set(tar.getnames())
    assert {f"work/logs/{s}.log" for s in ("probe", "build", "bench", "validate")} <= names
    text = (out / files.SUMMARY).read_text()
    assert (
        "no GPU (CPU dry run)" in text
        and "zhisuan.kernels.\\_C" in text
        and "zhisuan.kernels.\\_cuda" in text
    )
    assert "CPU dry run" in proc.stdout  # the short summary is what the call prints last
