"""The Result record: one flat record per measurement, and the labels that name it.

Every record carries `schema`; a reader refuses a version it does not know, with a clear message,
rather than misreading it. Files of records: result_files.py; the environment fingerprint each
record carries: environment.py.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass, field

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


def short_shape(op: str, shape: dict) -> str:
    """'1024x1024x1024' for matmul; 'b1 h32/8 s2048 d128 causal' for attention; key=value otherwise."""
    if op == "matmul" and {"M", "N", "K"} <= shape.keys():
        label = f"{shape['M']}x{shape['N']}x{shape['K']}"
        return f"{label} {shape['name']}" if "name" in shape else label
    if op == "attention" and "seq_q" in shape:
        s = shape
        heads = f"h{s['heads']}" + (f"/{s['heads_kv']}" if s["heads_kv"] != s["heads"] else "")
        seq = f"s{s['seq_q']}" + (f"/{s['seq_k']}" if s["seq_k"] != s["seq_q"] else "")
        return f"b{s['batch']} {heads} {seq} d{s['head_dim']}" + (" causal" if s["causal"] else "")
    return shape_label(shape)


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
