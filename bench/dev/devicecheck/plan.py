"""The one GPU call, planned: its stages in order, each with a time cap, and the command that runs it.

The lent GPU machine runs one command for at most 600 s, and a session has 15 minutes of GPU time
in all, the machine's start included. So the stages' caps add up to at most TOTAL_CAP_S, which
leaves a minute for the interpreter, the shell and the copy back; a stage that ends early hands
its unused time to the next ones (never beyond the total). The estimates are the longest times
measured on an H200 on 2026-11-27 (docs/benchmarks/h200.md), rounded up.
"""

from __future__ import annotations

from dataclasses import dataclass

TOTAL_CAP_S = 540
CALL_TIMEOUT_S = 600  # what the lead passes as the device tool's timeout_s
MAX_COMMAND_CHARS = 2000  # the device tool's limit on `command`

# Where the command links the repository's folders into a `zhisuan` namespace, so the orchestrator
# imports before anything is built or installed (the repository has no zhisuan/ folder of its own).
IMPORT_SHIM = "/tmp/zhisuan-import"


@dataclass(frozen=True)
class Stage:
    name: str
    cap_s: int  # killed at this (plus what earlier stages left unused), its output so far kept
    estimate_s: int  # measured on a GPU (the module docstring says where)
    gpu_only: bool  # without a GPU it reports "skipped: no GPU" and runs nothing
    what: str


STAGES: tuple[Stage, ...] = (
    Stage("probe", 20, 10, False, "GPU, driver, clocks, compute mode, package versions, nvidia-smi -q"),
    Stage("build", 90, 30, False, "offline in-place build (pip -e, else setup.py build_ext --inplace), sm_90a; both extensions verified"),
    Stage("gpu-tests", 130, 100, True, "pytest -m gpu (Triton, CUDA C++, cupy, numba): 8 xdist workers, 120 s per test"),
    Stage("serial-tests", 60, 45, True, "timing and IPC / collective GPU tests, one at a time, 45 s per test"),
    Stage("bench", 150, 145, False, "the benchmark's quick set through the runner (check, then time); tiny sizes on a CPU"),
    Stage("collective", 40, 30, True, "IPC all-reduce, 2 processes sharing the GPU, 64 KiB to 256 MiB"),
    Stage("validate", 40, 20, False, "zhisuan validate --level quick (tiny sizes on a CPU)"),
    Stage("pack", 10, 1, False, "at most 8 files back: the summary, JSON Lines, the log's tail; the rest in a tar.gz"),
)  # fmt: skip

STAGE_NAMES = tuple(stage.name for stage in STAGES)
# Run in every call, whatever --stages says: the probe finds the GPU and its build target, a fresh
# machine has nothing built, and only the pack brings everything back.
ALWAYS = ("probe", "build", "pack")


def total_cap_s(stages: tuple[Stage, ...] = STAGES) -> int:
    return sum(stage.cap_s for stage in stages)


def plan_lines(stages: tuple[Stage, ...] = STAGES) -> list[str]:
    """One line per stage (name, cap, estimate, what), then `total: N s`."""
    lines = [
        f"{s.name:<13} cap {s.cap_s:>3} s  (estimate {s.estimate_s:>3} s)  {'GPU only: ' if s.gpu_only else ''}{s.what}"
        for s in stages
    ]
    return [*lines, f"total: {total_cap_s(stages)} s"]


OUT_ARGUMENT = '--out "${OUT:?OUT is not set}"'  # the device tool sets $OUT; fail at once if not


def device_command(python: str = "python3", args: str = OUT_ARGUMENT) -> str:
    """The text to paste into the device tool's `command` (run in the repository root; $OUT set).

    It links the repository's bench/ and kernels/ into IMPORT_SHIM/zhisuan and puts that first on
    PYTHONPATH, so the orchestrator imports from this very tree before anything is built; the
    build stage then compiles the extensions into kernels/, where both this link and the editable
    install find them. (The tests run it with another python and --plan.)
    """
    package = f"{IMPORT_SHIM}/zhisuan"
    return (
        f"export PYTHONUNBUFFERED=1 PYTHONPATH={IMPORT_SHIM}${{PYTHONPATH:+:$PYTHONPATH}}; "
        f'mkdir -p {package} && ln -sfn "$PWD/bench" {package}/bench && ln -sfn "$PWD/kernels" {package}/kernels && '
        f"{python} -m zhisuan.bench.dev.devicecheck {args}"
    )
