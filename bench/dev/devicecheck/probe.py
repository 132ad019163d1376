"""Stage `probe`: what machine this is, read before anything runs on it.

    python -m zhisuan.bench.dev.devicecheck.probe --out OUT --work WORK

Writes OUT/environment.json (GPU, driver, clocks, compute mode, MIG and ECC modes, CUDA, compiler
and package versions, and zhisuan's own environment fingerprint), WORK/nvidia-smi-q.txt and
WORK/pip-list.txt. Reads only: it changes no setting of the card.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from zhisuan.bench.dev.devicecheck import files

PACKAGES = (
    "torch", "triton", "numpy", "scipy", "numba", "numba-cuda", "cupy-cuda13x", "cupy-cuda12x",
    "cuda-bindings", "nvidia-ml-py", "pybind11", "setuptools", "pip", "wheel", "pytest",
    "pytest-xdist", "pytest-timeout", "pytest-benchmark", "hypothesis", "rich", "zhisuan",
)  # fmt: skip
# Asked of nvidia-smi one query at a time if the set fails (a driver may lack one of them).
SMI_FIELDS = (
    "name", "driver_version", "compute_cap", "compute_mode", "persistence_mode", "pstate",
    "clocks.sm", "clocks.max.sm", "clocks.mem", "clocks.max.mem", "power.draw", "power.limit",
    "temperature.gpu", "memory.total", "mig.mode.current", "ecc.mode.current",
    "clocks_event_reasons.active",
)  # fmt: skip


def _run(argv: list[str], timeout: float = 20.0) -> tuple[int, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return -1, f"{type(exc).__name__}: {exc}"
    return proc.returncode, proc.stdout + proc.stderr


def package_versions() -> dict[str, str | None]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def nvidia_smi_query() -> list[dict] | str:
    """One dict per GPU with SMI_FIELDS, or why nvidia-smi could not say."""
    if shutil.which("nvidia-smi") is None:
        return "nvidia-smi not found"
    code, text = _run(["nvidia-smi", f"--query-gpu={','.join(SMI_FIELDS)}", "--format=csv,noheader"])
    if code == 0:
        return [
            dict(zip(SMI_FIELDS, (v.strip() for v in line.split(",")), strict=False))
            for line in text.splitlines()
            if line.strip()
        ]
    rows: list[dict] = []
    for field in SMI_FIELDS:  # field by field: an unknown one costs only itself
        code, text = _run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"])
        for i, line in enumerate(text.splitlines() if code == 0 else []):
            while len(rows) <= i:
                rows.append({})
            rows[i][field] = line.strip()
    return rows or f"nvidia-smi failed: {text.strip()[:300]}"


def torch_devices() -> dict:
    import torch

    info: dict = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cuda_available": torch.cuda.is_available(),
        "devices": [],
    }
    if info["cuda_available"]:
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            info["devices"].append({
                "name": p.name,
                "capability": f"{p.major}.{p.minor}",
                "sm_count": p.multi_processor_count,
                "memory_bytes": p.total_memory,
                "l2_bytes": getattr(p, "L2_cache_size", None),
            })  # fmt: skip
    return info


def nvcc_release() -> str:
    """'Cuda compilation tools, release 13.0, V13.0.88', or why there is none."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return "nvcc not found"
    release = [line.strip() for line in _run([nvcc, "--version"])[1].splitlines() if "release" in line]
    return release[0] if release else "nvcc: no version"


def cuda_archs(capability: str | None) -> str | None:
    """The nvcc target for a compute capability: Hopper's wgmma needs the 'a' target (90a)."""
    if not capability:
        return None
    major, minor = capability.split(".")
    return f"{major}{minor}" + ("a" if (major, minor) == ("9", "0") else "")


def probe(out: Path, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    env: dict = {
        "time": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "host": platform.node(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "cpu_count": os.cpu_count(),
        "packages": package_versions(),
        "nvidia_smi": nvidia_smi_query(),
    }
    env["nvcc"] = nvcc_release()
    try:
        env.update(torch_devices())
    except Exception as exc:  # a broken torch is itself the finding
        env["torch_error"] = f"{type(exc).__name__}: {exc}"
    devices = env.get("devices") or []
    env["cuda_archs"] = cuda_archs(devices[0]["capability"]) if devices else None
    try:
        from zhisuan.bench.core.environment import environment

        env["fingerprint"] = environment()
    except Exception as exc:
        env["fingerprint"] = f"unavailable: {type(exc).__name__}: {exc}"
    (out / files.ENVIRONMENT).write_text(json.dumps(env, indent=2, default=str))
    if shutil.which("nvidia-smi"):
        (work / files.NVIDIA_SMI_Q).write_text(_run(["nvidia-smi", "-q"])[1])
    pip_list = [sys.executable, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"]
    (work / files.PIP_LIST).write_text(_run(pip_list)[1])
    return env


def main(argv: list[str] | None = None) -> int:
    args = files.parse_out_and_work("read the machine: GPU, driver, clocks, versions", argv)
    env = probe(args.out, args.work)
    gpus = ", ".join(
        f"{d['name']} (sm_{d['capability'].replace('.', '')}, {d['sm_count']} SMs)"
        for d in env.get("devices", [])
    )
    print(f"python {env['python']}, torch {env.get('torch')}, CUDA {env.get('cuda')}, {env['nvcc']}")
    print(f"GPUs: {gpus or 'none'}; nvidia-smi: {json.dumps(env['nvidia_smi'])[:600]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
