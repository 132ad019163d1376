"""The Result record: one flat record per measurement, and the labels that name it.

Every record carries `schema`; a reader refuses a version it does not know, with a clear message,
rather than misreading it, and every field is checked (schema.py) before a record becomes a Result.
Files of records: result_files.py; the environment fingerprint each record carries: environment.py.

Statuses: only "ok" carries rates. "check-failed" (wrong output, on the first call or the last
timed one), "error" (raised), "mutated" (wrote into its inputs), "suspect" (a rate above what the
chip can do: a cache answered, or the work was skipped) and "unchecked" (timed without a reference,
bench.measure without one) are kept with their reason; only "unchecked" keeps its timing and rates,
marked as such.
"""

from __future__ import annotations

import dataclasses
import math
import time
import uuid
from dataclasses import dataclass, field

from zhisuan.bench.core.errors import UsageError
from zhisuan.bench.core.schema import SCHEMA_VERSION, STATUSES, SchemaError, check_record

__all__ = ["SCHEMA_VERSION", "STATUSES", "Result", "ResultFileError", "new_run_id", "shape_label"]
TIMED_STATUSES = (
    "ok",
    "unchecked",
)  # statuses whose samples are a timing of a correct call (or an unverified one)


class ResultFileError(UsageError):
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
    status: str = "ok"  # one of STATUSES (module docstring): only "ok" and "unchecked" are timings
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
        """What identifies a measurement across runs: (kind, op, backend, shape, dtype, variant, device
        name), the device name last (the gate drops it to match across chips on request)."""
        return (self.kind, self.op, self.backend, shape_label(self.shape), self.dtype, self.variant,
                self.device_name)  # fmt: skip

    @property
    def variant(self) -> str:
        """What tells apart measurements of one op, backend, shape and dtype: 'in-place, op=sum, rank=1'.

        Collectives are measured in place and out of place, per reduction op and root; validate
        records one result per rank. Empty for a kernel benchmark.
        """
        x = self.extra
        parts = []
        if isinstance(x.get("in_place"), bool):
            parts.append("in-place" if x["in_place"] else "out-of-place")
        if self.kind == "collective" and x.get("op"):
            parts.append(f"op={x['op']}")
        for name in ("root", "rank"):
            if isinstance(x.get(name), int) and x[name] >= 0:
                parts.append(f"{name}={x[name]}")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        """The record as JSON-ready data: a NaN or infinity (an error of NaN, a CV of nothing)
        becomes null, so every file zhisuan writes is strict JSON that its own schema check reads."""
        return _finite(dataclasses.asdict(self))

    @property
    def timed(self) -> bool:
        """True when the samples time a call whose output passed its check (or, unchecked, had none)."""
        return self.status in TIMED_STATUSES

    @classmethod
    def from_dict(cls, data: dict) -> Result:
        """A Result from a record, after the schema check (schema.py); ResultFileError names the field."""
        try:
            check_record(data)
        except SchemaError as exc:
            raise ResultFileError(str(exc)) from None
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


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
