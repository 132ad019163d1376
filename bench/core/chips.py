"""Chip detection and the peak database.

Accelerators (any torch device type: CUDA and ROCm GPUs, Ascend NPUs, XPUs, ...) are detected
through torch's generic device API (zhisuan.bench.core.accel) and matched against
bench/data/chips.toml by the exact name their torch plug-in reports, and by SM/CU count and memory
size where the entry gives them: never by a substring, so an H100 PCIe never borrows an H100 SXM's
figures and a 96 GB H20 never a 141 GB one's. An unknown chip gets no peak and therefore no
percent-of-peak, and `why_no_peak` says so.

CPUs get a theoretical peak derived from physical cores (SMT threads share a core's FMA units;
counted from the sysfs CPU topology) × clock × FLOPs per cycle (from the vector ISA and the
microarchitecture, py-cpuinfo), status "derived"; the measured peak comes from the FMA probe in
zhisuan.kernels._C (see measured_peak_flops).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files

import torch

from zhisuan.bench.core import accel

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

STATUSES = ("datasheet", "derived", "unverified")


@dataclass(frozen=True)
class Figure:
    """One peak figure with where it comes from."""

    value: float
    unit: str  # "TFLOP/s" or "TB/s"
    status: str
    source: str

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"figure status must be one of {STATUSES}, got {self.status!r}")


@dataclass(frozen=True)
class ChipSpec:
    id: str
    name: str
    device_names: tuple[str, ...]
    sm_count: int | None
    tflops: dict[str, Figure]
    mem_tbps: Figure | None
    memory_gb: float | None = None  # device memory; where given, a device must report about this much
    name_source: str = ""  # where the device name comes from, and whether it is a guess
    source: str = ""  # the entry's source: also says why a figure is absent


@dataclass
class Device:
    """A detected device: what it calls itself, its properties, and its peak figures if known."""

    kind: str  # the torch device type: "cpu", "cuda" (NVIDIA and ROCm), "npu", "xpu", ...
    torch_device: str  # "cpu", "cuda:0", "npu:3"
    name: str
    properties: dict = field(default_factory=dict)
    spec: ChipSpec | None = None
    why_no_peak: str | None = None
    cache_bytes: int = 32 << 20  # last-level cache (CPU) or L2 (accelerator): sizes the cache flush

    def peak(self, dtype: str) -> Figure | None:
        """Peak TFLOP/s for a math dtype ('fp32', 'tf32', 'bf16', ...), or None if unknown."""
        return self.spec.tflops.get(dtype) if self.spec else None

    def peak_bandwidth(self) -> Figure | None:
        return self.spec.mem_tbps if self.spec else None


def _figure(raw, unit: str, status: str, source: str) -> Figure:
    if isinstance(raw, dict):
        return Figure(float(raw["value"]), unit, raw.get("status", status), raw.get("source", source))
    return Figure(float(raw), unit, status, source)


@cache
def load_chips() -> tuple[ChipSpec, ...]:
    """The peak database (bench/data/chips.toml)."""
    text = files("zhisuan.bench").joinpath("data/chips.toml").read_text()
    chips = []
    for entry in tomllib.loads(text)["chip"]:
        status, source = entry["status"], entry["source"]
        mem = entry.get("mem_tbps")
        chips.append(
            ChipSpec(
                id=entry["id"],
                name=entry["name"],
                device_names=tuple(entry["device_names"]),
                sm_count=entry.get("sm_count"),
                tflops={k: _figure(v, "TFLOP/s", status, source) for k, v in entry["tflops"].items()},
                mem_tbps=None if mem is None else _figure(mem, "TB/s", status, source),
                memory_gb=entry.get("memory_gb"),
                name_source=entry.get("name_source", ""),
                source=source,
            )
        )
    return tuple(chips)


# A device's reported memory (what is left after the driver's reservations, in bytes) agrees with
# an entry's marketed GB within this fraction.
MEMORY_MATCH_FRACTION = 0.15


def memory_agrees(memory_bytes: int, memory_gb: float | None) -> bool:
    """The device's memory is about the entry's (or the entry gives none)."""
    return memory_gb is None or abs(memory_bytes / 1e9 - memory_gb) <= MEMORY_MATCH_FRACTION * memory_gb


def match_chip(
    device_name: str, sm_count: int | None = None, memory_bytes: int | None = None
) -> ChipSpec | None:
    """The one entry whose device names include device_name exactly (and whose SM count and memory
    agree); None when no entry fits, or several do (one name, two memory sizes, memory unknown)."""
    fits = []
    for chip in load_chips():
        if device_name.strip() not in chip.device_names:
            continue
        if chip.sm_count is not None and sm_count is not None and chip.sm_count != sm_count:
            continue
        if memory_bytes is not None and not memory_agrees(memory_bytes, chip.memory_gb):
            continue
        fits.append(chip)
    return fits[0] if len(fits) == 1 else None


# ---- CPU ---------------------------------------------------------------------------------------


@cache
def cpu_info() -> dict:
    """py-cpuinfo's description of this CPU (slow to gather: cached)."""
    import cpuinfo

    return cpuinfo.get_cpu_info()


def cpu_flops_per_cycle_fp32(vendor: str, family: int, model: int, flags: set[str]) -> tuple[int, str]:
    """FP32 FLOPs per cycle per core, with the reasoning (FMA = 2 FLOPs per lane)."""
    if vendor == "AuthenticAMD":
        if family >= 0x1A and "avx512f" in flags:
            return 64, "Zen 5: two 512-bit FMA pipes"
        if family == 0x19:
            return 32, "Zen 3/4: two 256-bit FMA pipes (Zen 4 runs AVX-512 as 2x256-bit)"
        if family == 0x17:
            return (32, "Zen 2: two 256-bit FMA pipes") if model >= 0x30 else (16, "Zen 1: 128-bit FMA pipes")
    if "avx512f" in flags:
        return 64, "AVX-512 with two FMA units (server cores; parts with one FMA unit reach half)"
    if "avx2" in flags and "fma" in flags:
        return 32, "AVX2 with two 256-bit FMA units"
    if "avx" in flags:
        return 16, "AVX without FMA: 8-wide add + 8-wide multiply"
    return 8, "SSE: 4-wide add + 4-wide multiply"


def logical_cpus() -> int:
    """CPUs this process may run on (its affinity): each hardware thread of an SMT core counts."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _core_of(cpu: int) -> tuple[str, str] | None:
    """(package, core) of a logical CPU from Linux's topology in sysfs, or None where unreadable."""
    base = f"/sys/devices/system/cpu/cpu{cpu}/topology"
    try:
        with open(f"{base}/physical_package_id") as package, open(f"{base}/core_id") as core:
            return package.read().strip(), core.read().strip()
    except OSError:
        return None


def physical_cores() -> tuple[int, str]:
    """(physical cores this process may run on, how they were counted).

    A core's hardware threads (SMT, hyper-threading) share its FMA units, so peaks and thread
    counts go by cores. Counted from Linux's CPU topology in sysfs: the distinct (physical_package_id,
    core_id) pairs of the CPUs in this process's affinity (the facts /proc/cpuinfo shows as
    "physical id" and "core id", present on ARM too); where that cannot be read, every logical
    CPU counts as a core, and the second value says so.
    """
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    cores = [_core_of(cpu) for cpu in cpus]
    if not cpus or None in cores:
        return logical_cpus(), "logical CPUs (the CPU topology in sysfs is unreadable)"
    return len(set(cores)), f"physical cores of {len(cpus)} logical CPUs (sysfs CPU topology)"


def cpu_cores() -> int:
    """Physical cores this process may run on (physical_cores)."""
    return physical_cores()[0]


def cpu_cache_bytes() -> int:
    """Size of the largest cache level, from sysfs (py-cpuinfo's L3 figure is unreliable in VMs)."""
    largest = 0
    base = "/sys/devices/system/cpu/cpu0/cache"
    if os.path.isdir(base):
        for index in os.listdir(base):
            try:
                with open(os.path.join(base, index, "size")) as fh:
                    text = fh.read().strip()
            except OSError:
                continue
            scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
            digits = text.rstrip("KMG")
            if digits.isdigit():
                largest = max(largest, int(digits) * scale)
    return largest or int(cpu_info().get("l3_cache_size") or (32 << 20))


def detect_cpu() -> Device:
    info = cpu_info()
    flags = set(info.get("flags", []))
    cores, counted = physical_cores()
    hz = (info.get("hz_advertised") or info.get("hz_actual") or [0])[0]
    per_cycle, why = cpu_flops_per_cycle_fp32(
        info.get("vendor_id_raw", ""), int(info.get("family", 0)), int(info.get("model", 0)), flags
    )
    name = info.get("brand_raw", "unknown CPU")
    props = {"cores": cores, "logical_cpus": logical_cpus(), "clock_ghz": hz / 1e9,
             "flops_per_cycle_fp32": per_cycle, "isa_reasoning": why}  # fmt: skip
    props["isa"] = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "sse"
    device = Device("cpu", "cpu", name, props, cache_bytes=cpu_cache_bytes())
    if not hz:
        device.why_no_peak = "CPU clock unknown (py-cpuinfo reports none): no theoretical peak"
        return device
    source = (
        f"derived: {cores} {counted} x {hz / 1e9:.3f} GHz (reported) x {per_cycle} FP32 FLOP/cycle ({why})"
    )
    fp32 = cores * hz * per_cycle / 1e12
    device.spec = ChipSpec(
        id="cpu",
        name=name,
        device_names=(name,),
        sm_count=None,
        tflops={
            "fp32": Figure(fp32, "TFLOP/s", "derived", source),
            "fp64": Figure(fp32 / 2, "TFLOP/s", "derived", source + "; FP64 is half"),
        },
        mem_tbps=None,
    )
    return device


# ---- accelerators ------------------------------------------------------------------------------

# The cache flush's size where a device does not report its L2: larger than any accelerator's
# last-level cache listed in chips.toml (an Ascend 910B's L2 is 96-192 MB by its CANN config).
UNKNOWN_CACHE_BYTES = 256 << 20


def detect_accelerator(dev: torch.device) -> Device:
    """Any non-CPU device, through its torch device module (zhisuan.bench.core.accel.describe)."""
    name, properties = accel.describe(dev)
    index = accel.index_of(dev)
    cache = properties.get("l2_bytes") or UNKNOWN_CACHE_BYTES
    device = Device(dev.type, f"{dev.type}:{index}", name, properties, cache_bytes=cache)
    device.spec = match_chip(name, properties.get("sm_count"), properties.get("memory_bytes"))
    if device.spec is None:
        units = f" ({properties['sm_count']} SMs/CUs)" if "sm_count" in properties else ""
        units += f" ({properties['memory_bytes'] / 1e9:.0f} GB)" if "memory_bytes" in properties else ""
        device.why_no_peak = (
            f"{name!r}{units} is not in the peak database (bench/data/chips.toml): "
            "no percent of peak is reported"
        )
    return device


def check_device(text: str) -> str:
    """text, when it names a usable device of this machine ('cpu', 'cuda:1', 'npu:3', 'hip' on ROCm,
    as torch names it); else UsageError why not, naming the plug-in a type needs."""
    return accel.check(text)


@cache
def detect(device: str = "cpu") -> Device:
    """The Device for a device string ('cpu', 'cuda', 'npu:1'); UsageError if it is not here."""
    dev = torch.device(check_device(device))
    if dev.type == "cpu":
        return detect_cpu()
    return detect_accelerator(dev)


def available_devices() -> list[str]:
    """cpu, then every device of the accelerator this torch has (built in or from a plug-in)."""
    accelerator = accel.default_type()
    return ["cpu"] + (accel.devices(accelerator) if accelerator != "cpu" else [])


_probe_best: dict[str, float] = {}  # best FMA-probe figure of this process, per dtype

# A kernel above CPU_MARGIN x the FMA probe's best figure is not doing the work it claims: the
# probe is the chip's own peak, measured; the margin covers a probe that met a busy spell twice.
CPU_MARGIN = 1.25
# A dtype the probe does not measure (bf16, fp16, int8: matrix units such as AMX do up to 32x an
# AVX-512 core's fp32 FMAs per cycle), or a rate of no stated dtype, is set against this multiple.
CPU_MATRIX_UNIT_FACTOR = 32
# A GPU figure other than the vendor's datasheet (derived, unverified) may be off: this margin.
GPU_UNSURE_MARGIN = 1.25


def flops_ceiling(
    device: Device, math_dtype: str | None, achieved: float | None = None
) -> tuple[float, str] | None:
    """The most FLOP/s a kernel computing in math_dtype can reach on device, and why; None if unknown.

    GPU: the peak figure of math_dtype (the largest figure of the chip when the dtype is not
    known). CPU: CPU_MARGIN x the measured FMA peak (re-measured when `achieved` beats it), never
    below the derived peak (a probe that met a busy spell twice, in CI: 104 GFLOP/s on a 2-core host
    derived at 157, and a 1024^3 matmul at 132 was called "suspect"); the derived peak where the
    probe cannot run; times CPU_MATRIX_UNIT_FACTOR for other dtypes.
    """
    if device.kind == "cpu":
        probed = math_dtype if math_dtype in ("fp32", "fp64") else "fp32"
        factor = 1 if math_dtype in ("fp32", "fp64") else CPU_MATRIX_UNIT_FACTOR
        hint = achieved / (CPU_MARGIN * factor) if achieved else None
        measured = measured_peak_flops(device, probed, hint)
        basis = f"{CPU_MARGIN} x the {probed} FMA peak measured on this CPU"
        margin = CPU_MARGIN
        if measured is None:  # no probe: the derived peak is at the reported (base) clock; turbo
            figure = device.peak(probed)  # clocks can reach about twice that
            if figure is None:
                return None
            measured, margin = figure.value * 1e12, 2.0
            basis = f"2 x the {probed} {figure.status} peak (turbo clocks above the reported one)"
        elif (figure := device.peak(probed)) is not None and figure.value * 1e12 > margin * measured:
            measured, margin = figure.value * 1e12, 1.0
            basis = f"the {probed} {figure.status} peak (above {CPU_MARGIN} x the FMA probe's best figure)"
        if factor != 1:
            basis += f" x {factor} (matrix units, for {math_dtype or 'an unstated dtype'})"
        return margin * factor * measured, basis
    if device.spec is None or not device.spec.tflops:
        return None
    figure = device.peak(math_dtype) if math_dtype else None
    what = f"the {math_dtype} peak"
    if figure is None:
        figure = max(device.spec.tflops.values(), key=lambda f: f.value)
        what = "the largest peak of any dtype"
    margin = 1.0 if figure.status == "datasheet" else GPU_UNSURE_MARGIN
    return figure.value * 1e12 * margin, f"{what}, {figure.status}" + (f", x {margin}" if margin != 1 else "")


def measured_peak_flops(device: Device, dtype: str, exceeded_by: float | None = None) -> float | None:
    """The achievable peak measured on this very chip (FLOP/s): the FMA probe on CPUs.

    The probe runs once per process and dtype. exceeded_by: the rate a kernel has just reached;
    if it beats the figure, the probe evidently ran while neighbours kept the cores busy, so it
    runs again and the best figure of the process is kept (a kernel can still come out above a
    probe that never met a quiet moment: a percentage over 100 says so).
    None where no probe exists (GPU: `zhisuan validate` measures the best matmul instead).
    """
    if device.kind != "cpu" or dtype not in ("fp32", "fp64"):
        return None
    from zhisuan.kernels.probe import fma_peak

    try:
        if dtype not in _probe_best:
            _probe_best[dtype] = fma_peak(dtype)["flops_per_s"]
        if exceeded_by is not None and exceeded_by > _probe_best[dtype]:
            _probe_best[dtype] = max(_probe_best[dtype], fma_peak(dtype, fresh=True)["flops_per_s"])
    except (ImportError, RuntimeError):  # zhisuan.kernels._C not built, or the probe could not run here
        return None
    return _probe_best[dtype]
