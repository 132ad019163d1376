"""Load the compiled extensions once, remembering why one could not be loaded.

Importing `kernels` never fails because an extension is missing: the backends that need one ask
here and report the reason ("kernels._C not built: ...") as their unavailability.
"""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType


@cache
def _load(name: str) -> tuple[ModuleType | None, str | None]:
    try:
        return importlib.import_module(f"kernels.{name}"), None
    except ImportError as exc:  # not built (no compiler, build failed) or unloadable
        return None, f"kernels.{name} not available ({exc}); reinstall with a C++ compiler (pip install .)"


def cpu_ext() -> ModuleType:
    """kernels._C, or raises ImportError with the reason."""
    module, reason = _load("_C")
    if module is None:
        raise ImportError(reason)
    return module


def cpu_ext_missing() -> str | None:
    return _load("_C")[1]


def cuda_ext() -> ModuleType:
    """kernels._cuda, or raises ImportError with the reason."""
    module, reason = _load("_cuda")
    if module is None:
        raise ImportError(reason)
    return module


def cuda_ext_missing() -> str | None:
    return _load("_cuda")[1]
