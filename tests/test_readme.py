"""Every command in the README runs as written, at small sizes (issue 14): the commands are read from
README.md itself, so the README and this test cannot drift apart.

A command runs with the substitutions of SMALL (sizes, iteration counts, durations: each must still
match something in the README, so a stale one fails), in README order, in one scratch folder (later
commands read what earlier ones wrote: baseline.jsonl, sweep.jsonl), with `zhisuan validate` at the
test sizes (ZHISUAN_VALIDATE_TEST_SIZES) and the history in that folder. A command that cannot run
here is listed in NOT_RUN with the reason; a listed command that is no longer in the README fails.
The Python blocks run too, each in a fresh interpreter.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
HAS_CUDA = torch.cuda.is_available()

# README command -> why it does not run here (matched exactly, after comments are stripped).
NOT_RUN = {
    "pip install .": "the test runs inside the installed package (CI installed it with pip install -e)",
    "pip install -e '.[test]'": "the test runs inside the installed package",
    "pytest": "the test suite itself",
    "pip install torch --index-url https://download.pytorch.org/whl/cpu": "needs the package index",
    "srun -N 16 --ntasks-per-node 8 python -m zhisuan.bench collective all_reduce -e 8G": "needs Slurm",
    "torchrun --nnodes 16 --nproc-per-node 8 ... -m zhisuan.bench validate": "a template for a 16-node job",
    "python -m zhisuan.bench.dev.devicecheck --out /tmp/dc": "the dry run: tests/test_devicecheck.py runs it",
    "python -m zhisuan.bench.dev.devicecheck --out /tmp/dc --build-mode verify": "tests/test_devicecheck.py",
    "python3 -m pip install --no-index --no-build-isolation --no-deps -v -e .": "the GPU machine's build stage",
    "python3 setup.py build_ext --inplace": "the GPU machine's fallback build",
    "zhisuan ab origin/main HEAD matmul --shape 256": "builds two worktrees (minutes): tests/test_ab.py runs ab",
}
NOT_RUN_PREFIXES = {
    # tests/test_collectives_mpi.py runs this command's form (torch, shm and mpi under mpirun). Run
    # here, one rank once aborted in gloo's teardown (SIGABRT in ProcessGroupGloo::runLoop after the
    # sweep, 2026-11-27): a known, unexplained flake, in the closing note, not hidden by a retry.
    "mpirun -np 2 -x MASTER_ADDR=127.0.0.1": "tests/test_collectives_mpi.py (a teardown flake seen here: see the comment)",
    "export PYTHONUNBUFFERED=1": "the GPU machine's command: tests/test_devicecheck.py checks it is --print-command's",
}

# (README text, what runs instead): smaller sizes, fewer iterations, shorter durations.
SMALL = [
    (r"^zhisuan run$", "zhisuan run --iters 2"),
    ("--shape 2048x2048x2048 --iters 20", "--shape 128x128x128 --iters 3"),
    ("--shape 1x32x8x2048x2048x128", "--shape 1x4x2x64x64x32 --iters 2"),
    ("--suite square --time-budget 2", "--shape 128 --shape 256 --time-budget 0.1"),
    ("--suite square --interleave", "--shape 128 --shape 256 --iters 2 --interleave"),
    ("-b 8 -e 128M -f 2", "-b 8 -e 64K -f 16 -n 3 -w 1"),
    ("-o sum,max --nproc 2", "-o sum,max --nproc 2 -b 8 -e 1K -f 16 -n 3 -w 1"),
    ("-b 1M -e 8G -f 2 --min-busbw 300", "-b 8 -e 64K -f 16 -n 3 -w 1 --min-busbw 0.000001"),
    ("-b 8 -e 32M -f", "-n 3 -w 1 -b 8 -e 64K -f"),
    # torchrun's script may belong to another Python than the one zhisuan is installed in
    ("^torchrun --nproc-per-node 8", f"{sys.executable} -m torch.distributed.run --nproc-per-node 2"),
    ("--duration 2h", "--duration 2s"),
    (
        r"zhisuan run --json (\w+)\.jsonl",
        r"zhisuan run matmul --backend cpp --shape 1024 --iters 3 --json \1.jsonl",
    ),
    (r"^zhisuan run ", "zhisuan run --rounds 3 --in-process "),  # rounds in one process: no fork per round
]

# Commands whose exit code is a verdict on this host's numbers, not a usage check: the gate on two
# runs of identical code (a noisy host may show a real shift), and validate at the test sizes (a 97^3
# matmul cannot reach thresholds set for real sizes: on a quiet host that is a FAIL, exit 1).
VERDICTS = ("zhisuan compare ", "zhisuan history compare ", "zhisuan validate")


def readme_sections(text: str) -> dict[str, list[str]]:
    """The commands of the README's bash blocks, per `##` section, in order: continuation lines
    joined, comments stripped, `a && b` split in two (except in the lines of NOT_RUN_PREFIXES)."""
    sections = {}
    for title, body in re.findall(r"^## (.+?)\n(.*?)(?=^## |\Z)", text, re.S | re.M):
        commands = []
        for block in re.findall(r"```bash\n(.*?)```", body, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = re.sub(r"\s+#\s.*$", "", line).strip()
                if line.startswith(tuple(NOT_RUN_PREFIXES)):
                    commands.append(line)  # one shell line, not run: kept whole
                elif line and not line.startswith("#"):
                    commands += [part.strip() for part in line.split(" && ")]
        if commands:
            sections[title] = commands
    return sections


def readme_commands(text: str) -> list[str]:
    return [c for commands in readme_sections(text).values() for c in commands]


def not_run_reason(command: str) -> str | None:
    if command in NOT_RUN:
        return NOT_RUN[command]
    return next((why for prefix, why in NOT_RUN_PREFIXES.items() if command.startswith(prefix)), None)


def small(command: str) -> str:
    for pattern, replacement in SMALL:
        command = re.sub(pattern, replacement, command)
    return command


def expected_exit(command: str) -> set[int]:
    if command.startswith(VERDICTS):
        return {0, 1}
    if "--device cuda" in command and not HAS_CUDA:
        return {2}  # refused in one line, naming the missing device
    return {0}


def test_every_readme_command_runs_or_says_why_not():
    commands = readme_commands(README)
    assert len(commands) > 20, "the README's bash blocks were not found"
    stale = [c for c in list(NOT_RUN) + list(NOT_RUN_PREFIXES) if not any(x.startswith(c) for x in commands)]
    assert not stale, f"NOT_RUN lists commands the README no longer has: {stale}"
    unused = [p for p, _ in SMALL if not any(re.search(p, c) for c in commands)]
    assert not unused, f"SMALL substitutes text the README no longer has: {unused}"


@pytest.mark.parametrize(
    "section", list(readme_sections(README)), ids=lambda t: re.sub(r"\W+", "-", t).strip("-").lower()
)
def test_readme_commands_run_as_written(tmp_path, section):
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path),
        "ZHISUAN_HISTORY_DB": str(tmp_path / "history.db"),
        "ZHISUAN_VALIDATE_TEST_SIZES": "tiny",
        "COLUMNS": "200",
    }
    failures = []
    for command in readme_sections(README)[section]:
        if not_run_reason(command):
            continue
        runnable = small(command)
        done = subprocess.run(
            ["bash", "-c", runnable], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
        )
        if done.returncode not in expected_exit(command) or "Traceback" in done.stderr:
            output = (done.stdout + done.stderr)[-1500:]
            failures.append(
                f"$ {runnable}\n(exit {done.returncode}, expected {expected_exit(command)})\n{output}"
            )
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("index", range(len(re.findall(r"```python\n", README))))
def test_readme_python_blocks_run(tmp_path, index):
    from zhisuan.bench.collectives.launch import free_port

    code = re.findall(r"```python\n(.*?)```", README, re.S)[index]
    env = {
        **os.environ,
        "RANK": "0",
        "WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    if "bench.measure(" in code:
        assert done.stdout.splitlines()[-1].startswith("ok "), done.stdout  # the measured result was checked
