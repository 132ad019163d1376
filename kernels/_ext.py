"""Load the compiled extensions once, remembering why one could not be loaded.

Importing `kernels` never fails because an extension is missing: the backends that need one ask
here and report the reason ("zhisuan.kernels._C not built: ...") as their unavailability.
"""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType


@cache
def _load(name: str) -> tuple[ModuleType | None, str | None]:
    try:
        return importlib.import_module(f"zhisuan.kernels.{name}"), None
    except ImportError as exc:  # not built (no compiler, build failed) or unloadable
        return (
            None,
            f"zhisuan.kernels.{name} not available ({exc}); reinstall with a C++ compiler (pip install .)",
        )


def cpu_ext() -> ModuleType:
    """zhisuan.kernels._C, or raises ImportError with the reason."""
    module, reason = _load("_C")
    if module is None:
        raise ImportError(reason)
    return module


def _missing(name: str, symbol: str | None, part: str) -> str | None:
    module, reason = _load(name)
    if module is None:
        return reason
    if symbol is not None and not hasattr(module, symbol):
        return f"zhisuan.kernels.{name} was built without {part}; reinstall (pip install .)"
    return None


def cpu_ext_missing(symbol: str | None = None, part: str = "") -> str | None:
    """None when zhisuan.kernels._C loads (and has `symbol`, the entry point of `part`), else why not."""
    return _missing("_C", symbol, part)


def cuda_ext() -> ModuleType:
    """zhisuan.kernels._cuda, or raises ImportError with the reason."""
    module, reason = _load("_cuda")
    if module is None:
        raise ImportError(reason)
    return module


def cuda_ext_missing(symbol: str | None = None, part: str = "") -> str | None:
    """None when zhisuan.kernels._cuda loads (and has `symbol`, the entry point of `part`), else why not."""
    return _missing("_cuda", symbol, part)
