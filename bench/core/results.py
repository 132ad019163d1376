"""The Result record, its JSON Lines file, CSV export and the environment fingerprint.

One flat record per measurement. Results are appended to the file and flushed as each arrives, so
Ctrl-C or a crash keeps everything measured so far. Every line carries `schema`; a reader refuses
a version it does not know, with a clear message, rather than misreading it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import platform
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

SCHEMA_VERSION = 1
STATUSES = ("ok", "check-failed", "error")


class ResultFileError(ValueError):
    """A results file that cannot be read: says which file, which line and why."""


@dataclass
class Result:
    kind: str  # "kernel", "collective", "validate"
    op: str
    backend: str
    shape: dict
    dtype: str
    device: str  # torch device string: "cpu", "cuda:0"
    device_name: str
    status: str = "ok"  # "ok" | "check-failed" | "error": a failed run is never a timing
    error: str | None = None
    samples_s: list[float] = field(default_factory=list)
    median_s: float | None = None
    iqr_s: float | None = None
    cv: float | None = None
    flops: float | None = None
    bytes: float | None = None
    flops_per_s: float | None = None
    bytes_per_s: float | None = None
    peak_flops: float | None = None  # datasheet or derived figure (FLOP/s)
    peak_status: str | None = None  # its status: datasheet / derived / unverified
    pct_peak: float | None = None
    measured_peak_flops: float | None = None  # measured on this chip (FMA probe, best matmul)
    pct_measured_peak: float | None = None
    peak_bandwidth: float | None = None  # bytes/s
    pct_peak_bandwidth: float | None = None
    check: dict = field(default_factory=dict)  # max_abs_err, tolerance, passed, reference
    interpreted: bool = False  # produced by an interpreter/simulator: times are meaningless
    extra: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    run_id: str = ""
    timestamp: float = field(default_factory=time.time)
    schema: int = SCHEMA_VERSION

    def key(self) -> tuple:
        """What identifies a benchmark across runs: (op, backend, shape, dtype, device name)."""
        return (self.kind, self.op, self.backend, shape_label(self.shape), self.dtype, self.device_name)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Result:
        schema = data.get("schema")
        if schema != SCHEMA_VERSION:
            raise ResultFileError(
                f"result schema version {schema!r} is not supported (this zhisuan reads version {SCHEMA_VERSION})"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        missing = {"kind", "op", "backend", "shape", "dtype", "device", "device_name"} - data.keys()
        if missing:
            raise ResultFileError(f"result record lacks field(s): {', '.join(sorted(missing))}")
        return cls(**{k: v for k, v in data.items() if k in names})


def shape_label(shape: dict) -> str:
    """A stable, readable label: 'M=1024,N=1024,K=1024'."""
    return ",".join(f"{k}={v}" for k, v in shape.items())


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


class ResultWriter:
    """Appends results to a JSON Lines file, one flushed line per result."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115  (closed by close())

    def write(self, result: Result) -> None:
        self._file.write(json.dumps(result.to_dict(), default=str) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_results(path: str | os.PathLike) -> list[Result]:
    """Every result in a JSON Lines file (or in every *.jsonl of a directory)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        if not files:
            raise ResultFileError(f"{path}: directory holds no *.jsonl result files")
        return [r for f in files for r in read_results(f)]
    if not path.exists():
        raise ResultFileError(f"{path}: no such file")
    results = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ResultFileError(
                    f"{path}:{number}: not valid JSON ({exc.msg}); truncated file?"
                ) from None
            if not isinstance(data, dict):
                raise ResultFileError(f"{path}:{number}: expected a JSON object, got {type(data).__name__}")
            try:
                results.append(Result.from_dict(data))
            except ResultFileError as exc:
                raise ResultFileError(f"{path}:{number}: {exc}") from None
    if not results:
        raise ResultFileError(f"{path}: file holds no results")
    return results


CSV_FIELDS = [
    "run_id", "kind", "op", "backend", "shape", "dtype", "device", "device_name", "status",
    "median_s", "iqr_s", "cv", "flops_per_s", "bytes_per_s", "pct_peak", "pct_measured_peak",
    "max_abs_err", "tolerance", "passed", "interpreted", "n_samples",
]  # fmt: skip


def write_csv(results: list[Result], path: str | os.PathLike) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for r in results:
            row = {k: getattr(r, k) for k in CSV_FIELDS if hasattr(r, k)}
            row.update(
                shape=shape_label(r.shape),
                max_abs_err=r.check.get("max_abs_err"),
                tolerance=r.check.get("tolerance"),
                passed=r.check.get("passed"),
                n_samples=len(r.samples_s),
            )
            writer.writerow(row)


# ---- environment fingerprint ---------------------------------------------------------------------


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _version(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return None


@cache
def environment() -> dict:
    """What a comparison must agree on: chip, drivers, library versions, build, host."""
    import torch

    from zhisuan.bench.core import chips

    env = {
        "host": socket.gethostname(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": _version("triton"),
        "numpy": _version("numpy"),
        "zhisuan": _version("zhisuan"),
        "git_sha": _git_sha(),
        "cpu": chips.cpu_info().get("brand_raw"),
        "cpu_cores": chips.cpu_cores(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda,
        "gpus": [],
    }
    try:
        from zhisuan.kernels._ext import cpu_ext

        env["kernels_C_build"] = dict(cpu_ext().build_info())
    except ImportError as exc:
        env["kernels_C_build"] = f"unavailable: {exc}"
    if torch.cuda.is_available():
        env["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        env["cuda_driver"] = _cuda_driver_version()
    return env


def _cuda_driver_version() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlSystemGetDriverVersion()
    except Exception:  # pynvml missing or NVML unusable: the fingerprint says unknown
        return None
