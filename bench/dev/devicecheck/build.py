"""Stage `build`: compile both extensions offline, in place, then prove that the ones that load are these.

    python -m zhisuan.bench.dev.devicecheck.build --records OUT/devicecheck.jsonl --work WORK [--mode verify]

--mode build (the default) removes kernels/_C*.so, kernels/_cuda*.so and build/, then
  1. pip install --no-index --no-build-isolation --no-deps -v -e .
     setuptools >= 64 builds the editable wheel (PEP 660) with the setuptools and pybind11 already
     installed; nothing is fetched. The extensions land in kernels/, beside their Python layer.
  2. only if pip fails (no pip, or a setuptools too old for editable wheels):
     python setup.py build_ext --inplace (any setuptools); the command's import shim then finds
     the package without an install.
--mode verify skips the build (a dry run on a machine where the install was just made).
Then a fresh interpreter imports zhisuan.kernels._C and ._cuda. Each must load from this tree's
kernels/ (and, after a build, be newer than the stage's start); _cuda must carry machine code for
the GPU's target (cuobjdump --list-elf). Both extensions are optional in setup.py, so without
this a failed CUDA build would pass unnoticed: one `extension` record each, and exit 1 when one
that should be there is not.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from zhisuan.bench.dev.devicecheck import files

ROOT = files.REPO_ROOT
EXTENSIONS = ("_C", "_cuda")
PIP_EDITABLE = ["-m", "pip", "install", "--no-index", "--no-build-isolation", "--no-deps",
                "--disable-pip-version-check", "-v", "-e", "."]  # fmt: skip
SETUP_INPLACE = ["setup.py", "build_ext", "--inplace"]

IMPORT_SCRIPT = """
import importlib, json
found = {}
for name in %r:
    try:
        module = importlib.import_module("zhisuan.kernels." + name)
        found[name] = {"file": module.__file__}
    except Exception as exc:
        found[name] = {"error": type(exc).__name__ + ": " + str(exc)}
print("EXTENSIONS " + json.dumps(found))
"""


def cuda_expected() -> str | None:
    """Why _cuda should not be expected here, or None when setup.py was meant to build it."""
    if os.environ.get("ZHISUAN_SKIP_CUDA", "0") == "1":
        return "ZHISUAN_SKIP_CUDA=1"
    if not (os.environ.get("CUDA_HOME") or shutil.which("nvcc")):
        return "nvcc not found"
    return None


def remove_stale() -> list[str]:
    """Delete the extensions in kernels/ and setuptools' build/ folder: nothing old can be reused."""
    stale = [p for name in EXTENSIONS for p in (ROOT / "kernels").glob(f"{name}.*.so")]
    for path in stale:
        path.unlink()
    if (ROOT / "build").is_dir():
        shutil.rmtree(ROOT / "build")
        stale.append(ROOT / "build")
    return [p.name for p in stale]


def compile_in_place() -> str:
    """Build; returns how ("pip -e", "setup.py build_ext --inplace") or raises when both fail."""
    print("build: " + " ".join(["python", *PIP_EDITABLE]), flush=True)
    if subprocess.run([sys.executable, *PIP_EDITABLE], cwd=ROOT).returncode == 0:
        return "pip -e"
    print("build: pip failed; falling back to " + " ".join(["python", *SETUP_INPLACE]), flush=True)
    if subprocess.run([sys.executable, *SETUP_INPLACE], cwd=ROOT).returncode == 0:
        return "setup.py build_ext --inplace"
    raise RuntimeError("both pip -e and setup.py build_ext --inplace failed (see the build log)")


def loaded_extensions() -> dict[str, dict]:
    """{name: {"file": path} or {"error": text}}, as a fresh interpreter with this env sees them."""
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_SCRIPT % (EXTENSIONS,)], capture_output=True, text=True, cwd=ROOT
    )
    for line in proc.stdout.splitlines():
        if line.startswith("EXTENSIONS "):
            return json.loads(line.removeprefix("EXTENSIONS "))
    why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {name: {"error": f"the import check itself failed: {why}"} for name in EXTENSIONS}


def find_cuobjdump() -> str | None:
    """cuobjdump from the CUDA toolkit, else the copy that Triton's NVIDIA backend ships."""
    tool = shutil.which("cuobjdump")
    if tool is None:
        try:
            import triton
        except ImportError:
            return None
        bundled = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
        tool = str(bundled) if bundled.exists() else None
    return tool


def gpu_targets(path: str) -> list[str] | None:
    """The sm_XX targets whose machine code the library carries, or None without cuobjdump."""
    tool = find_cuobjdump()
    if tool is None:
        return None
    out = subprocess.run([tool, "--list-elf", path], capture_output=True, text=True).stdout
    return sorted(set(re.findall(r"\bsm_\d+[af]?\b", out)))


def judge(name: str, found: dict, *, built_after: float | None, wanted_arch: str | None) -> dict:
    """One extension record: status ok / missing / stale / foreign / no-gpu-code, and why."""
    record = {"kind": "extension", "module": f"zhisuan.kernels.{name}", **found}
    if "error" in found:
        skip = cuda_expected() if name == "_cuda" else None
        record.update(status="not-expected" if skip else "missing", reason=skip or found["error"])
        return record
    path = Path(found["file"]).resolve()
    record["file"] = str(path)
    if path.parent != (ROOT / "kernels").resolve():
        record.update(status="foreign", reason=f"loaded from {path}, not from this tree's kernels/")
    elif built_after is not None and path.stat().st_mtime < built_after:
        record.update(status="stale", reason="older than this build: not the extension just compiled")
    else:
        record.update(status="ok", reason="")
    if name == "_cuda" and record["status"] == "ok" and wanted_arch:
        targets = gpu_targets(str(path))
        record["gpu_targets"] = targets
        if targets is not None and f"sm_{wanted_arch}" not in targets:
            record.update(status="no-gpu-code", reason=f"carries {targets}, not sm_{wanted_arch}")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="build the extensions offline, in place, and verify them")
    parser.add_argument("--records", required=True, type=Path, help="the call's devicecheck.jsonl")
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--mode", choices=("build", "verify"), default="build")
    args = parser.parse_args(argv)
    start = time.time()
    summary: dict = {"mode": args.mode, "root": str(ROOT), "cuda_archs": os.environ.get("ZHISUAN_CUDA_ARCHS")}
    if args.mode == "build":
        summary["removed"] = remove_stale()
        try:
            summary["how"] = compile_in_place()
        except RuntimeError as exc:
            summary["how"] = f"failed: {exc}"
    found = loaded_extensions()
    wanted = (os.environ.get("ZHISUAN_CUDA_ARCHS") or "").split(";")[-1] or None
    built_after = start if args.mode == "build" else None
    records = [judge(name, found[name], built_after=built_after, wanted_arch=wanted) for name in EXTENSIONS]
    for record in records:
        record["how"] = summary.get("how", "verified only")
        files.append_record(args.records, record)
        print(
            f"build: {record['module']}: {record['status']} {record.get('reason', '')}".rstrip(), flush=True
        )
    summary["extensions"] = records
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / files.BUILD_JSON).write_text(json.dumps(summary, indent=2))
    return 0 if all(r["status"] in ("ok", "not-expected") for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
