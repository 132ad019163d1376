"""The one registry of kernel backends: op name -> backend name -> Backend.

A backend registers itself once, with explicit names (never inferred from module paths), the
devices and dtypes it handles, and a probe that says *why* it cannot run here. Asking for a
backend that cannot run raises BackendUnavailable with that reason; nothing falls back silently.

    @register("matmul", "cpp", devices=("cpu",), dtypes=(torch.float32,), probe=cpp_probe)
    def matmul_cpp(a, b): ...

devices names torch device types ("cpu", "cuda", ...) or ANY_DEVICE ("any": every type torch runs
on, for backends that are torch's own ops); the probe gets the real type asked about.

Backends from other packages (bring-your-own-kernel) register the same way, or through the
entry-point group ``zhisuan.backends`` (each entry point names a module to import).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points

import torch

OPS = ("matmul", "attention", "all_reduce")
ENTRY_POINT_GROUP = "zhisuan.backends"
# In a backend's devices: every device type torch runs on (its own ops: torch.matmul, SDPA,
# torch.distributed), CUDA, ROCm, Ascend NPUs, XPUs and the CPU alike.
ANY_DEVICE = "any"

# probe(device_type) -> None when the backend can run on that device type, else the reason.
Probe = Callable[[str], "str | None"]


class BackendUnavailable(RuntimeError):
    """A backend was asked for that cannot run here; the message says why."""


def always_available(device_type: str) -> str | None:
    return None


@dataclass(frozen=True)
class Backend:
    op: str
    name: str
    fn: Callable
    devices: frozenset[str]
    dtypes: frozenset[torch.dtype]  # on every device, unless device_dtypes narrows it for one
    probe: Probe = always_available
    baseline: bool = False  # the vendor/reference implementation others are compared against
    priority: int = 0  # automatic selection takes the highest-priority available backend
    description: str = ""
    # True when results on this device are produced by an interpreter/simulator: correct, but
    # their times mean nothing, so the harness prints no FLOP/s for them.
    interpreted: Callable[[str], bool] = field(default=lambda device_type: False)
    # The math a dtype is computed in where it differs from the storage dtype, keyed by dtype name:
    # {"fp32": "tf32"} for a kernel that multiplies fp32 inputs on tensor cores. Peaks use this key.
    math_dtypes: Mapping[str, str] = field(default_factory=dict)
    # True when the backend's output supports autograd (o.backward() gives input gradients).
    differentiable: bool = False
    # Optional: called once with a case's inputs, returns facts for the result's `extra`
    # (e.g. which of torch's SDPA kernels ran). Never timed.
    describe: Callable[..., dict] | None = None
    # Dtypes per device where they differ between devices ("cpp" matmul: fp32/fp64 on cpu, fp16/bf16
    # on cuda); a device not named here takes `dtypes`.
    device_dtypes: Mapping[str, frozenset[torch.dtype]] = field(default_factory=dict)
    # Optional: prepare(*args, **kwargs) does fn's set-up for these inputs once (checks, choices,
    # output allocation, launch arguments) and returns the zero-argument call that does the work;
    # prepare(*args, **kwargs)() must equal fn(*args, **kwargs). The harness times only that call.
    prepare: Callable[..., Callable[[], object]] | None = None

    def bind(self, *args, **kwargs) -> Callable[[], object]:
        """The zero-argument call of this backend on these inputs: what the harness checks and times."""
        if self.prepare is not None:
            return self.prepare(*args, **kwargs)
        return functools.partial(self.fn, *args, **kwargs)

    def dtypes_on(self, device_type: str) -> frozenset[torch.dtype]:
        return self.device_dtypes.get(device_type, self.dtypes)

    def runs_on(self, device_type: str) -> bool:
        """device_type is one of this backend's devices (ANY_DEVICE: every type)."""
        return device_type in self.devices or ANY_DEVICE in self.devices

    def why_not(self, device_type: str, dtype: torch.dtype | None = None) -> str | None:
        """None if this backend can run on device_type (and dtype), else the reason."""
        if not self.runs_on(device_type):
            return f"{self.name} does not run on {device_type} (runs on: {', '.join(sorted(self.devices))})"
        if dtype is not None and dtype not in self.dtypes_on(device_type):
            names = ", ".join(sorted(dtype_name(d) for d in self.dtypes_on(device_type)))
            return f"{dtype_name(dtype)} not supported by {self.name} on {device_type} (supports: {names})"
        return self.probe(device_type)


@dataclass(frozen=True)
class BackendStatus:
    """What zhisuan.kernels.backends(op) reports for one backend."""

    name: str
    available: bool
    reason: str  # "available" or why not
    devices: tuple[str, ...]
    dtypes: tuple[str, ...]  # on the device asked about; without one, on any of its devices
    baseline: bool
    dtypes_by_device: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # what each device runs

    def __str__(self) -> str:
        return self.reason


_REGISTRY: dict[str, dict[str, Backend]] = {op: {} for op in OPS}
_entry_points_loaded = False


def dtype_name(dtype: torch.dtype) -> str:
    return DTYPE_NAMES.get(dtype, str(dtype).removeprefix("torch."))


DTYPE_NAMES = {
    torch.float64: "fp64",
    torch.float32: "fp32",
    torch.float16: "fp16",
    torch.bfloat16: "bf16",
    torch.int32: "int32",
    torch.int64: "int64",
    torch.int8: "int8",
}
for _name in ("float8_e4m3fn", "float8_e5m2"):
    if hasattr(torch, _name):
        DTYPE_NAMES[getattr(torch, _name)] = {"float8_e4m3fn": "fp8e4m3", "float8_e5m2": "fp8e5m2"}[_name]
DTYPES_BY_NAME = {name: dtype for dtype, name in DTYPE_NAMES.items()}


def parse_dtype(name: str) -> torch.dtype:
    """'bf16' -> torch.bfloat16; accepts torch's own names too ('bfloat16', 'float32')."""
    if name in DTYPES_BY_NAME:
        return DTYPES_BY_NAME[name]
    dtype = getattr(torch, name, None)
    if isinstance(dtype, torch.dtype):
        return dtype
    raise ValueError(f"unknown dtype {name!r}; known: {', '.join(DTYPES_BY_NAME)}")


def register(
    op: str,
    name: str,
    *,
    devices: Iterable[str],
    dtypes: Iterable[torch.dtype] | Mapping[str, Iterable[torch.dtype]],
    probe: Probe = always_available,
    baseline: bool = False,
    priority: int = 0,
    description: str = "",
    interpreted: Callable[[str], bool] | None = None,
    math_dtypes: Mapping[str, str] | None = None,
    differentiable: bool = False,
    describe: Callable[..., dict] | None = None,
    prepare: Callable[..., Callable[[], object]] | None = None,
) -> Callable[[Callable], Callable]:
    """Decorator: register fn as backend `name` of `op`. Registering a name twice is an error.

    dtypes: the dtypes on every device, or a mapping device -> dtypes where they differ.
    """
    if op not in _REGISTRY:
        raise ValueError(f"unknown op {op!r}; ops: {', '.join(OPS)}")
    devices = frozenset(devices)
    device_dtypes = {}
    if isinstance(dtypes, Mapping):
        unknown = set(dtypes) - devices
        if unknown and ANY_DEVICE not in devices:
            raise ValueError(f"dtypes name devices that {name!r} does not list: {', '.join(sorted(unknown))}")
        device_dtypes = {device: frozenset(ds) for device, ds in dtypes.items()}
        dtypes = frozenset().union(*device_dtypes.values())

    def decorate(fn: Callable) -> Callable:
        if name in _REGISTRY[op]:
            raise ValueError(f"backend {name!r} is already registered for {op}")
        extra = {"interpreted": interpreted} if interpreted is not None else {}
        extra |= {"math_dtypes": dict(math_dtypes)} if math_dtypes else {}
        _REGISTRY[op][name] = Backend(
            op=op,
            name=name,
            fn=fn,
            devices=devices,
            dtypes=frozenset(dtypes),
            device_dtypes=device_dtypes,
            probe=probe,
            baseline=baseline,
            priority=priority,
            differentiable=differentiable,
            describe=describe,
            prepare=prepare,
            description=description or (fn.__doc__ or "").strip().split("\n")[0],
            **extra,
        )
        return fn

    return decorate


def unregister(op: str, name: str) -> None:
    """Remove a backend (for tests and for replacing a user backend)."""
    _REGISTRY[op].pop(name, None)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        importlib.import_module(ep.value.split(":")[0])


def registered(op: str) -> dict[str, Backend]:
    """All backends of op, whether they can run here or not."""
    if op not in _REGISTRY:
        raise ValueError(f"unknown op {op!r}; ops: {', '.join(OPS)}")
    _load_entry_points()
    return dict(_REGISTRY[op])


def get(op: str, name: str) -> Backend:
    backends = registered(op)
    if name not in backends:
        raise ValueError(f"unknown {op} backend {name!r}; registered: {', '.join(sorted(backends))}")
    return backends[name]


def select(op: str, device_type: str, dtype: torch.dtype, backend: str | None = None) -> Backend:
    """The named backend, checked; or the highest-priority backend that can run here."""
    if backend is not None:
        chosen = get(op, backend)
        reason = chosen.why_not(device_type, dtype)
        if reason:
            raise BackendUnavailable(f"{op} backend {backend!r} unavailable: {reason}")
        return chosen
    candidates = sorted(registered(op).values(), key=lambda b: -b.priority)
    reasons = []
    for candidate in candidates:
        reason = candidate.why_not(device_type, dtype)
        if reason is None and candidate.interpreted(device_type):
            # Correct but orders of magnitude slow (TRITON_INTERPRET=1): only when asked for by name.
            reason = f"interpreted on {device_type}; name it (backend={candidate.name!r}) to use it"
        if reason is None:
            return candidate
        reasons.append(f"{candidate.name}: {reason}")
    raise BackendUnavailable(
        f"no {op} backend for {dtype_name(dtype)} on {device_type}: " + "; ".join(reasons)
    )


def status(op: str, device_type: str | None = None) -> dict[str, BackendStatus]:
    """Availability of every backend of op: on device_type, or on any device it supports."""
    result = {}
    for name, b in sorted(registered(op).items()):
        if device_type is not None:
            reason = b.why_not(device_type)
        else:
            reasons = [b.why_not(d) for d in sorted(b.devices)]
            reason = None if None in reasons else "; ".join(dict.fromkeys(reasons))
        result[name] = BackendStatus(
            name=name,
            available=reason is None,
            reason=reason or "available",
            devices=tuple(sorted(b.devices)),
            dtypes=tuple(
                sorted(dtype_name(d) for d in (b.dtypes if device_type is None else b.dtypes_on(device_type)))
            ),
            baseline=b.baseline,
            dtypes_by_device={
                d: tuple(sorted(dtype_name(t) for t in b.dtypes_on(d))) for d in sorted(b.devices)
            },
        )
    return result
