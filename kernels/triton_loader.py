"""Loads our Triton kernel files, compiled for the GPU or run by Triton's interpreter on CPU tensors.

@triton.jit decides between compiling and interpreting when the decorator runs (Triton 3.x), not
when a kernel is launched, so each kernel file is executed once per mode into a module object of
its own: kernels_for(name, device) gives the compiled copy for CUDA tensors and the interpreted
copy for CPU tensors, whatever TRITON_INTERPRET said when triton was imported. The environment
variable only decides whether the CPU path is offered (zhisuan.kernels.devices.triton_missing_on).

The kernel files are plain Triton, written for the GPU. The interpreted copy's kernels launch
inside zhisuan.kernels.triton_interpreter_shim.interpreter_fixes(), which fills the interpreter's
gaps for the duration of the launch; compiled kernels never see it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
from types import ModuleType

import torch

from zhisuan.kernels.devices import rocm_build


@functools.cache
def load_kernel_module(module_name: str, interpret: bool) -> ModuleType:
    """A fresh copy of the Triton kernel module `module_name`, its @triton.jit functions built for
    the interpreter (interpret=True) or for the GPU compiler; TRITON_INTERPRET's knob is restored."""
    import triton

    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot find the Triton kernel module {module_name}")
    mode = "interpreted" if interpret else "compiled"
    spec = importlib.util.spec_from_file_location(f"{module_name}__{mode}", spec.origin)
    with triton.knobs.runtime.scope():
        triton.knobs.runtime.interpret = interpret
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    if interpret:
        from zhisuan.kernels.triton_interpreter_shim import with_interpreter_fixes

        with_interpreter_fixes(module)
    return module


def kernels_for(module_name: str, device: torch.device) -> ModuleType:
    """The copy of a kernel module that runs on device: interpreted for CPU tensors, else compiled."""
    return load_kernel_module(module_name, device.type == "cpu")


def target_for(device: torch.device) -> str:
    """'interpreter', 'hopper' (sm_90+) or 'ampere' (sm_80-sm_89, and every ROCm GPU: its
    capability numbers are gfx versions, and Hopper's TMA and wgmma do not exist there)."""
    if device.type == "cpu":
        return "interpreter"
    if rocm_build():
        return "ampere"
    major, _ = torch.cuda.get_device_capability(device)
    return "hopper" if major >= 9 else "ampere"


def shared_memory_limit(device: torch.device) -> int | None:
    """Bytes of shared memory a program may use on device (None under the interpreter: no limit)."""
    if device.type == "cpu":
        return None
    from triton.runtime import driver

    return driver.active.utils.get_device_properties(device.index)["max_shared_mem"]


def cdiv(x: int, y: int) -> int:
    """Ceiling division on the host (grid sizes)."""
    return -(-x // y)


def on_device(t: torch.Tensor):
    """Context for a launch: Triton launches on the current CUDA device, so make it t's."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()
