"""A stand-in for a vendor's torch plug-in: for tests only, imported in a process of its own.

Importing it does what importing torch_npu does for Ascend NPUs: it renames torch's PrivateUse1
device type to 'npu', registers a device module as torch.npu and makes 'hccl' torch.distributed's
default backend for the type. The device module reports two devices: npu:0 named 'Ascend910B3'
(in zhisuan's chip database) and npu:1 named 'Ascend910_9392' (a real 910C SoC name that has no
entry). The C++ half of a real plug-in (the device guard behind torch.accelerator.* and torch.Event)
cannot be written in Python, so those functions are replaced here by ones that record every call
in CALLS and read a clock that only `work` advances, so a timer's samples can be checked exactly.
"""

from __future__ import annotations

import types

import torch
import torch.distributed as dist

NAMES = ("Ascend910B3", "Ascend910_9392")
CUBE_CORES = (20, 24)
MEMORY_BYTES = 64 << 30
FREE_BYTES = 60 << 30
CALLS: list[tuple] = []
_state = {"device": 0, "clock_ms": 0.0}


def work(ms: float) -> str:
    """Device work that takes `ms` milliseconds on the stand-in clock."""
    _state["clock_ms"] += ms
    return f"{ms} ms of work"


class Stream:
    def __init__(self, index: int):
        self.device_index = index


class Event:
    """torch.Event's interface: records the stand-in clock on a stream."""

    def __init__(self, device=None, *, enable_timing: bool = False, **_):
        self.device = torch.device(device)
        self.enable_timing = enable_timing
        self.time_ms = None

    def record(self, stream=None):
        CALLS.append(("record", None if stream is None else stream.device_index))
        self.time_ms = _state["clock_ms"]

    def synchronize(self):
        CALLS.append(("event-synchronize",))

    def elapsed_time(self, end: Event) -> float:
        if not (self.enable_timing and end.enable_timing):
            raise RuntimeError("both events need enable_timing=True")
        return end.time_ms - self.time_ms


def _properties(index: int):
    return types.SimpleNamespace(
        name=NAMES[index], total_memory=MEMORY_BYTES, cube_core_num=CUBE_CORES[index], vector_core_num=40
    )


def _synchronize(index=None):
    CALLS.append(("synchronize", index))


def _set_device(index):
    CALLS.append(("set_device", index))
    _state["device"] = int(index)


device_module = types.ModuleType("torch.npu")
device_module.is_available = lambda: True
device_module.device_count = lambda: len(NAMES)
device_module.current_device = lambda: _state["device"]
device_module.set_device = _set_device
device_module.get_device_name = lambda index=0: NAMES[index]
device_module.get_device_properties = _properties
device_module.synchronize = _synchronize

torch.utils.rename_privateuse1_backend("npu")
torch._register_device_module("npu", device_module)
dist.Backend.default_device_backend_map["npu"] = "hccl"
torch.accelerator.current_device_index = lambda: _state["device"]
torch.accelerator.set_device_index = _set_device
torch.accelerator.synchronize = _synchronize
torch.accelerator.current_stream = lambda index=None: Stream(_state["device"] if index is None else index)
torch.accelerator.get_memory_info = lambda index=None: (FREE_BYTES, MEMORY_BYTES)
torch.Event = Event
