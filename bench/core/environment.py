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

    from zhisuan.bench.core import chips

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
        "gpus": [],
    }
    try:
        from zhisuan.kernels._ext import cpu_ext

        env["kernels_C_build"] = dict(cpu_ext().build_info())
    except ImportError as exc:
        env["kernels_C_build"] = f"unavailable: {exc}"
    if torch.cuda.is_available():
        env["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        env["cuda_driver"] = _cuda_driver_version()
    return env


def _cuda_driver_version() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlSystemGetDriverVersion()
    except Exception:  # pynvml missing or NVML unusable: the fingerprint says unknown
        return None
