"""What Triton's interpreter lacks for our kernels, filled in around each interpreted launch only.

The kernel files (kernels/*/triton_kernels.py) are written for the GPU and nothing else. On CPU
tensors they run through Triton's interpreter (TRITON_INTERPRET=1), which, as of Triton 3.9,
differs from the compiled kernels in three ways that matter here:

1. triton.language's own @jit functions (tl.zeros, tl.cdiv, tl.max, tl.sum, ...) are built in the
   mode that was on when triton was imported, normally compiled, and an interpreted kernel cannot
   call a compiled function. For the launch each is replaced by an interpreted twin, as if triton
   had been imported with TRITON_INTERPRET=1 (the interpreter then reduces with numpy).
2. tl.dot multiplies bfloat16 operands as their raw 16-bit patterns (the interpreter keeps bf16 as
   uint16). Here they are widened to fp32 first: exact, like the tensor cores' bf16 products.
3. Casts from fp32 to bfloat16 truncate, and to fp8 can carry wrongly (31.9 became 16 in e4m3).
   Here they round to nearest even through torch, fp8 saturating at its largest finite value as
   the GPU's cvt.rn.satfinite does.

interpreter_fixes() applies all three and undoes them on exit, so compiled kernels and other users
of the interpreter never see them; the loader (zhisuan.kernels.triton_loader) wraps every launch of
an interpreted kernel in it (with_interpreter_fixes). Each fix wraps one of the interpreter's entry
points and hands every case it does not cover to the original. The patches are process-wide while
a launch runs: interpreted launches are not meant to run from several threads at once.

On exit every attribute that triton.language's modules had before the launch is put back, not only
ours: the interpreter patches a device function's language module when it calls one and never
undoes it (Triton 3.9), so a call of an interpreted tl.max would otherwise leave
triton.language.core's builtins bound to the interpreter, and kernels compiled afterwards fail.

Only the loader imports this module, and only when triton is installed.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from types import ModuleType

import numpy as np
import torch
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction, TensorHandle, interpreter_builder
from triton.runtime.jit import JITFunction, mangle_type

_MISSING = object()


class _Snapshot:
    """The attributes of some namespaces (modules, objects) now, to be put back later."""

    def __init__(self, owners: list[object], *, drop_added: bool) -> None:
        self._saved = [(owner, dict(vars(owner))) for owner in owners]
        self._drop_added = drop_added

    def restore(self) -> None:
        for owner, before in self._saved:
            now = vars(owner)
            for name, value in before.items():
                if now.get(name, _MISSING) is not value:
                    setattr(owner, name, value)
            if self._drop_added:
                for name in [name for name in now if name not in before]:
                    delattr(owner, name)


# ---- 1. triton.language's jit functions, interpreted ----------------------------------------------


def _language_modules() -> list[ModuleType]:
    """triton.language and its submodules (standard, random, ...): where its jit functions live."""
    submodules = [
        m for m in vars(tl).values() if inspect.ismodule(m) and m.__name__.startswith("triton.language.")
    ]
    return [tl, *submodules]


# Keyed by id: a JITFunction's hash is its cache key, computed from its dependencies, which must
# not be worked out while they are patched. triton.language's functions live as long as the process.
_twins: dict[int, InterpretedFunction] = {}


def _interpreted_twin(jit_function: JITFunction) -> InterpretedFunction:
    if id(jit_function) not in _twins:
        _twins[id(jit_function)] = InterpretedFunction(jit_function.fn)
    return _twins[id(jit_function)]


def _interpret_language(modules: list[ModuleType]) -> None:
    for module in modules:
        for name, value in list(vars(module).items()):
            if isinstance(value, JITFunction):
                setattr(module, name, _interpreted_twin(value))


# ---- 2. bf16 operands of tl.dot -----------------------------------------------------------------


def _widened_bf16(handle: TensorHandle) -> TensorHandle:
    if handle.dtype.scalar != tl.bfloat16:
        return handle
    return TensorHandle((handle.data.astype(np.uint32) << 16).view(np.float32), tl.float32)


def _dot_widening_bf16(original):
    def create_dot(a, b, *rest):
        return original(_widened_bf16(a), _widened_bf16(b), *rest)

    return create_dot


# ---- 3. rounding to bf16 and fp8 ----------------------------------------------------------------


@functools.cache
def _rounded_formats() -> dict:
    """Triton dtype -> (torch dtype, same-width integer dtype) for the formats rounded here."""
    formats = {tl.bfloat16: (torch.bfloat16, torch.int16)}
    if hasattr(torch, "float8_e4m3fn"):
        formats[tl.float8e4nv] = (torch.float8_e4m3fn, torch.int8)
        formats[tl.float8e5] = (torch.float8_e5m2, torch.int8)
    return formats


def _round_to_nearest_even(handle: TensorHandle, dst_type) -> TensorHandle | None:
    """handle's fp32/fp16 values rounded into dst_type, or None where the interpreter is right."""
    target = _rounded_formats().get(dst_type.scalar)
    if target is None or handle.data.dtype not in (np.float32, np.float16):
        return None
    torch_dtype, int_dtype = target
    values = torch.from_numpy(np.ascontiguousarray(handle.data, dtype=np.float32))
    if torch_dtype.itemsize == 1:  # satfinite: beyond the largest finite value clamps, NaN stays NaN
        largest = torch.finfo(torch_dtype).max
        values = values.clamp(-largest, largest)
    bits = values.to(torch_dtype).view(int_dtype).numpy()
    return TensorHandle(bits.view(np.uint16 if torch_dtype.itemsize == 2 else np.uint8), dst_type.scalar)


def _cast_rounding(original):
    def cast(src, dst_type, *rest):
        rounded = _round_to_nearest_even(src, dst_type)
        return original(src, dst_type, *rest) if rounded is None else rounded

    return cast


# ---- applying them ------------------------------------------------------------------------------


@functools.cache
def _import_what_launches_import() -> None:
    """A launch specialises its arguments (mangle_type), and the first specialisation imports more
    of triton (Triton 3.9: triton.experimental.gluon, which wraps triton.language's jit functions
    and must see the real ones). Done once before any patch, so no import runs inside one."""
    mangle_type(1)
    mangle_type(torch.empty(1))


@contextlib.contextmanager
def interpreter_fixes():
    """The three fixes above, for the duration of the block."""
    _import_what_launches_import()
    modules = _language_modules()
    # Names the interpreter adds to a module (what its rewritten functions refer to) stay: they are
    # needed by its cached rewrites, and nothing compiled refers to them.
    language = _Snapshot(modules, drop_added=False)
    builder = interpreter_builder
    ours = _Snapshot([builder], drop_added=True)
    try:
        _interpret_language(modules)
        builder.create_dot = _dot_widening_bf16(builder.create_dot)
        builder.cast_impl = _cast_rounding(builder.cast_impl)  # fp32 -> bf16
        builder.create_fp_to_fp = _cast_rounding(builder.create_fp_to_fp)  # fp32 -> fp8
        yield
    finally:
        ours.restore()
        language.restore()


class FixedInterpretedFunction(InterpretedFunction):
    """An interpreted kernel whose launches run inside interpreter_fixes()."""

    def run(self, *args, **kwargs):
        with interpreter_fixes():
            return super().run(*args, **kwargs)


def with_interpreter_fixes(module: ModuleType) -> None:
    """Replace module's interpreted functions with ones that launch inside interpreter_fixes()."""
    for name, value in list(vars(module).items()):
        if type(value) is InterpretedFunction:
            setattr(module, name, FixedInterpretedFunction(value.fn, **value.kwargs))
