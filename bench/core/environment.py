"""The environment fingerprint every result carries: what a comparison of two runs must agree on."""

from __future__ import annotations

import platform
import socket
import subprocess
from functools import cache
from pathlib import Path


def _git(*args: str) -> str | None:
    """What git says about the checkout zhisuan runs from (None outside one)."""
    try:
        out = subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _version(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return None


@cache
def environment() -> dict:
    """What a comparison must agree on: chip, drivers, library versions, build, host."""
    import torch

    from zhisuan.bench.core import accel, chips

    env = {
        "host": socket.gethostname(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": _version("triton"),
        "numpy": _version("numpy"),
        "zhisuan": _version("zhisuan"),
        "git_sha": _git("rev-parse", "--short", "HEAD"),
        "git_branch": _git("rev-parse", "--abbrev-ref", "HEAD"),  # "HEAD" when detached: no branch
        "cpu": chips.cpu_info().get("brand_raw"),
        "cpu_cores": chips.cpu_cores(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda,
        "hip": getattr(torch.version, "hip", None),
        "accelerator": None,
        "gpus": [],  # the accelerator's device names (GPUs, NPUs, ...), in index order
    }
    try:
        from zhisuan.kernels._ext import cpu_ext

        env["kernels_C_build"] = dict(cpu_ext().build_info())
    except ImportError as exc:
        env["kernels_C_build"] = f"unavailable: {exc}"
    kind = accel.default_type()
    if kind != "cpu":
        env["accelerator"] = kind
        env["gpus"] = [accel.describe(torch.device(name))[0] for name in accel.devices(kind)]
    if kind == "cuda" and not accel.rocm_build():
        env["cuda_driver"] = _cuda_driver_version()
    for plugin in accel.PLUGINS.values():  # a vendor plug-in's version changes what its kernels do
        found = _version(plugin.module)
        if found:
            env[plugin.module] = found
    return env


def _cuda_driver_version() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlSystemGetDriverVersion()
    except Exception:  # pynvml missing or NVML unusable: the fingerprint says unknown
        return None
