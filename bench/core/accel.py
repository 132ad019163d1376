"""torch's generic device API in one place: every device type torch knows, built in or from a plug-in.

A device string names a type torch knows ('cpu', 'cuda', 'xpu', ...) or one that a vendor's plug-in
registers when imported ('npu' by torch_npu for Huawei Ascend, 'musa' by torch_musa, 'mlu' by
torch_mlu). torch's ROCm builds (AMD GPUs, Hygon DCUs) reuse the 'cuda' type, so 'hip' is read as
'cuda' there. Everything else in zhisuan asks this module, never a vendor's module by name:
  - which type and how many devices: torch.get_device_module(type).is_available() / device_count()
    (what torch.accelerator.is_available() and device_count() delegate to, but for a named type);
  - the default device: torch.accelerator.current_accelerator(), when one is usable;
  - synchronize, the current stream, selecting a device: torch.accelerator.*;
  - timing on the device's stream: torch.Event(device=..., enable_timing=True);
  - memory: torch.accelerator.get_memory_info; names and properties: the device module's
    get_device_properties / get_device_name;
  - the collective backend: torch.distributed.get_default_backend_for_device (a plug-in registers
    its own, e.g. hccl for npu).
CPU work is synchronous and is timed with the host clock: torch.Event does not record on the CPU
(torch 2.13: "cpu backend doesn't support events"), see zhisuan.bench.core.timing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

import torch

from zhisuan.bench.core.errors import UsageError
from zhisuan.kernels.devices import rocm_build  # True on ROCm builds, where AMD and Hygon GPUs are 'cuda'

CPU = "cpu"


@dataclass(frozen=True)
class Plugin:
    """A vendor's torch plug-in: importing `module` registers its device type."""

    module: str
    vendor: str
    collective: str  # the torch.distributed backend the vendor documents for it


# Out-of-tree device types and the plug-ins that add them. Only npu (torch_npu) has been seen in
# Huawei's own code and documentation here; the others follow their vendors' public code.
PLUGINS = {
    "npu": Plugin("torch_npu", "Huawei Ascend", "hccl"),
    "musa": Plugin("torch_musa", "Moore Threads", "mccl"),
    "mlu": Plugin("torch_mlu", "Cambricon", "cncl"),
    "hpu": Plugin("habana_frameworks.torch", "Intel Gaudi", "hccl"),
}


def is_accelerator(device_type: str) -> bool:
    return device_type != CPU


def size_class(device_type: str) -> str:
    """'cpu' or 'accelerator': what the shape suites and validate levels are sized for."""
    return CPU if device_type == CPU else "accelerator"


def _type_known(device_type: str) -> bool:
    """torch parses the type and has its device module (a plug-in type has neither before import)."""
    try:
        torch.device(device_type)
        torch.get_device_module(device_type)
    except (RuntimeError, ValueError, AttributeError):
        return False
    return True


def load_plugin(device_type: str) -> None:
    """Import the plug-in that adds device_type; UsageError naming it when it is missing."""
    plugin = PLUGINS.get(device_type)
    if plugin is None:
        try:
            torch.device(device_type)
        except (RuntimeError, ValueError):
            known = ", ".join(f"{t} ({p.module})" for t, p in PLUGINS.items())
            raise UsageError(
                f"device {device_type!r}: torch has no such device type (plug-ins zhisuan knows: {known})"
            ) from None
        raise UsageError(f"device {device_type!r}: torch has no device module for it: not a device to run on")
    try:
        importlib.import_module(plugin.module)
    except ImportError:
        raise UsageError(
            f"device {device_type!r}: torch has no such device type; install {plugin.module} ({plugin.vendor})"
        ) from None
    except Exception as exc:  # a plug-in whose driver or toolkit is missing fails in its own ways
        raise UsageError(
            f"device {device_type!r}: {plugin.module} ({plugin.vendor}) is installed but does not import: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if not _type_known(device_type):
        raise UsageError(
            f"device {device_type!r}: {plugin.module} imported but registered no {device_type!r} device"
        )


def resolve(text: str) -> torch.device:
    """The torch.device a device string names ('cpu', 'cuda:1', 'npu:3', 'hip' on ROCm), loading
    the type's plug-in if torch does not know it yet; UsageError (one line) if it cannot."""
    text = text.strip()
    kind, sep, index = text.partition(":")
    if kind == "hip":
        if not rocm_build():
            raise UsageError(
                f"device {text!r}: 'hip' names a ROCm GPU, and this torch is not a ROCm build "
                "(torch.version.hip is None)"
            )
        kind, text = "cuda", "cuda" + sep + index  # ROCm builds of torch name HIP devices 'cuda'
    if not kind.isidentifier():
        raise UsageError(
            f"device {text!r} is not a device name (expected cpu, cuda, npu, ... with an optional :N)"
        )
    if not _type_known(kind):
        load_plugin(kind)
    try:
        return torch.device(text)
    except (RuntimeError, ValueError):
        raise UsageError(
            f"device {text!r} is not a device name (expected a type and an optional index: cpu, cuda:1, npu:3)"
        ) from None


def device_module(device_type: str) -> ModuleType:
    """torch.<type> (torch.cuda, torch.xpu, torch.npu once torch_npu is imported)."""
    return torch.get_device_module(device_type)


def missing(device_type: str) -> str | None:
    """None when a device of this type is usable here, else why not."""
    if device_type == CPU:
        return None
    if not _type_known(device_type):
        return f"torch has no {device_type!r} device"
    module = device_module(device_type)
    available = getattr(module, "is_available", None)
    if available is None or not available():
        return f"no {device_type} device here (torch.{device_type}.is_available() is False)"
    return None


def device_count(device_type: str) -> int:
    if device_type == CPU:
        return 1
    return int(device_module(device_type).device_count()) if missing(device_type) is None else 0


def check(text: str) -> str:
    """The device string, when it names a usable device of this machine; UsageError why not."""
    dev = resolve(text)
    if dev.type == CPU:
        return str(dev)
    reason = missing(dev.type)
    if reason:
        raise UsageError(f"device {text!r}: {reason}")
    count = device_count(dev.type)
    if (dev.index or 0) >= count:
        raise UsageError(
            f"device {text!r}: this machine has {count} {dev.type} device(s), "
            f"{dev.type}:0 to {dev.type}:{count - 1}"
        )
    return str(dev)


def default_type() -> str:
    """The accelerator type this torch has (built in, or registered by a plug-in) when usable, else 'cpu'."""
    accelerator = torch.accelerator.current_accelerator()
    if accelerator is not None and missing(accelerator.type) is None:
        return accelerator.type
    return CPU


def devices(device_type: str) -> list[str]:
    """'type:i' for every usable device of the type ([] where none)."""
    return [f"{device_type}:{i}" for i in range(device_count(device_type))]


def index_of(device: torch.device) -> int:
    """The device's index: its own, or the accelerator's current device."""
    if device.index is not None:
        return device.index
    return int(torch.accelerator.current_device_index())


def synchronize(device: str | torch.device) -> None:
    """Wait for the device's queued work (nothing to wait for on the CPU)."""
    dev = torch.device(device)
    if dev.type != CPU:
        torch.accelerator.synchronize(index_of(dev))


def current_stream(device: torch.device):
    """The stream work for device is queued on now (the one the harness times)."""
    return torch.accelerator.current_stream(index_of(device))


def timing_event(device: torch.device) -> torch.Event:
    """An event that records a time on device's stream."""
    return torch.Event(device=device, enable_timing=True)


def set_device(device: torch.device) -> None:
    """Make device the current one of its type (ranks bind to their local device)."""
    torch.accelerator.set_device_index(index_of(device))


def memory_info(device: torch.device) -> tuple[int, int] | None:
    """(free, total) bytes of device's memory, or None where its plug-in cannot say."""
    try:
        free, total = torch.accelerator.get_memory_info(index_of(device))
    except (RuntimeError, NotImplementedError):  # a plug-in without a caching-allocator hook
        return None
    return int(free), int(total)


def empty_cache(device_type: str) -> None:
    """Return the caching allocator's unused blocks to the device, where the type has one."""
    if device_type != CPU:
        release = getattr(device_module(device_type), "empty_cache", None)
        if release is not None:
            release()


# Properties torch's device modules report, under the names zhisuan records them by. CUDA and ROCm
# count SMs / CUs in multi_processor_count; torch_npu reports cube and vector cores; XPU compute units.
_PROPERTY_NAMES = {
    "multi_processor_count": "sm_count",
    "cube_core_num": "cube_cores",
    "vector_core_num": "vector_cores",
    "max_compute_units": "compute_units",
    "total_memory": "memory_bytes",
    "L2_cache_size": "l2_bytes",
    "gcnArchName": "arch",
}


def describe(device: torch.device) -> tuple[str, dict]:
    """(the name the device reports, its properties by zhisuan's names) from its device module."""
    module = device_module(device.type)
    index = index_of(device)
    props = module.get_device_properties(index) if hasattr(module, "get_device_properties") else None
    name = getattr(props, "name", None) or module.get_device_name(index)
    found = {}
    for attr, key in _PROPERTY_NAMES.items():
        value = getattr(props, attr, None)
        if value not in (None, ""):
            found[key] = value
    if isinstance(getattr(props, "major", None), int) and isinstance(getattr(props, "minor", None), int):
        found["capability"] = f"{props.major}.{props.minor}"  # NVIDIA's sm version; gfx-derived on ROCm
    bus = pci_bus_id(props)
    if bus:
        found["pci_bus_id"] = bus
    return str(name).strip(), found


def pci_bus_id(props) -> str | None:
    """'0000:c1:00.0' from torch's pci_domain_id / pci_bus_id / pci_device_id, where it reports them."""
    parts = [getattr(props, f"pci_{p}_id", None) for p in ("domain", "bus", "device")]
    if any(not isinstance(p, int) for p in parts):
        return None
    domain, bus, dev = parts
    return f"{domain:04x}:{bus:02x}:{dev:02x}.0"


def dist_backend(device_type: str) -> str:
    """torch.distributed's default backend for the type (gloo on cpu, nccl on cuda, hccl on npu,
    xccl on xpu: each registered by torch or the plug-in); UsageError when none is registered."""
    import torch.distributed as dist

    try:
        return dist.get_default_backend_for_device(device_type)
    except (ValueError, RuntimeError):
        plugin = PLUGINS.get(device_type)
        usual = f" ({plugin.vendor} documents {plugin.collective})" if plugin else ""
        raise UsageError(
            f"torch.distributed has no default backend for {device_type} devices{usual}: name one with --backend"
        ) from None


_float64_homes: dict[str, str] = {}


def float64_device(device: str | torch.device) -> str:
    """Where float64 references are computed for inputs on device: the device itself where a
    float64 matmul runs there (CPU, CUDA, ROCm), else the CPU (some NPUs have no float64 matmul).
    Probed once per device type with a 2x2 product, never assumed."""
    dev = torch.device(device)
    if dev.type not in _float64_homes:
        home = CPU
        if dev.type != CPU:
            try:
                ones = torch.ones(2, 2, dtype=torch.float64, device=dev)
                if float((ones @ ones).sum()) == 8.0:
                    home = dev.type
            except (RuntimeError, NotImplementedError, TypeError):
                pass  # no float64 matmul on this device type: references go to the CPU
        _float64_homes[dev.type] = home
    home = _float64_homes[dev.type]
    return str(dev) if home == dev.type else CPU
