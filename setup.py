"""Build the pybind11 extensions of zhisuan.

zhisuan.kernels._C     C++ CPU kernels (csrc/cpu, csrc/bindings.cpp): always attempted.
zhisuan.kernels._cuda  CUDA kernels (csrc/cuda): attempted when nvcc is found.

Both are optional: a failed build leaves the package installable, and the backend that needs the
extension reports itself unavailable with the reason (see kernels/_ext.py).
"""

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension
from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext

try:  # the error an optional extension may raise and still leave the build going
    from setuptools.errors import CompileError
except ImportError:  # setuptools < 59
    from distutils.errors import CompileError

# ---- build switches (all of them, in one place) -------------------------------------------
# ZHISUAN_SKIP_CUDA=1      do not build zhisuan.kernels._cuda even when nvcc is present
# ZHISUAN_CUDA_ARCHS       ';'-separated SM targets for nvcc, e.g. "80;90a" (default below)
# ZHISUAN_CPU_NATIVE=1     compile the CPU kernels with -march=native (default: portable build
#                          with per-ISA micro-kernels picked at run time)
# ZHISUAN_DEBUG=1          -O0 -g instead of -O3
# ZHISUAN_BUILD_JOBS=N     compile N sources at once (default: one per CPU; both extensions together)
SKIP_CUDA = os.environ.get("ZHISUAN_SKIP_CUDA", "0") == "1"
CUDA_ARCHS = os.environ.get("ZHISUAN_CUDA_ARCHS", "80;90a")
CPU_NATIVE = os.environ.get("ZHISUAN_CPU_NATIVE", "0") == "1"
DEBUG = os.environ.get("ZHISUAN_DEBUG", "0") == "1"
BUILD_JOBS = int(os.environ.get("ZHISUAN_BUILD_JOBS", "0")) or os.cpu_count() or 1

ROOT = Path(__file__).parent
OPT = ["-O0", "-g"] if DEBUG else ["-O3"]
CPU_FLAGS = [*OPT, "-fopenmp", "-fno-math-errno", "-ffp-contract=fast"]
if CPU_NATIVE:
    CPU_FLAGS.append("-march=native")


def find_nvcc() -> str | None:
    cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if cuda_home and (Path(cuda_home) / "bin" / "nvcc").exists():
        return str(Path(cuda_home) / "bin" / "nvcc")
    return shutil.which("nvcc")


def cuda_root(nvcc: str) -> Path:
    """The toolkit folder (include/, lib/). nvcc may be a wrapper script on PATH, so ask it."""
    out = subprocess.run(
        [nvcc, "--dryrun", "-E", "-x", "cu", os.devnull], capture_output=True, text=True
    ).stderr
    match = re.search(r"^#\$ TOP=(.+)$", out, re.MULTILINE)
    return Path(match.group(1).strip()).resolve() if match else Path(nvcc).resolve().parent.parent


def gencode_flags(archs: str) -> list[str]:
    flags = []
    for arch in filter(None, (a.strip() for a in archs.split(";"))):
        flags += ["-gencode", f"arch=compute_{arch},code=sm_{arch}"]
    return flags


def sources(folder: str, suffix: str) -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / folder).glob(f"*{suffix}"))


class BuildExt(build_ext):
    """build_ext that compiles .cu files with nvcc and links them into their extension.

    The extensions build side by side, and so do their sources (pybind11's ParallelCompile for
    C++, a thread per nvcc for CUDA): on a 16-core GPU machine the build takes about as long as
    its slowest source instead of the sum of them all.
    """

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = BUILD_JOBS

    def build_extension(self, ext):
        cu_files = [s for s in ext.sources if s.endswith(".cu")]
        if cu_files:
            ext.sources = [s for s in ext.sources if not s.endswith(".cu")]
            ext.extra_objects = [*ext.extra_objects, *self.compile_cuda(cu_files, ext.include_dirs)]
        super().build_extension(ext)

    def compile_cuda(self, cu_files: list[str], include_dirs: list[str]) -> list[str]:
        nvcc = find_nvcc()
        out_dir = Path(self.build_temp) / "cuda"
        out_dir.mkdir(parents=True, exist_ok=True)

        def compile_one(src: str) -> str:
            obj = out_dir / (Path(src).stem + ".o")
            cmd = [
                nvcc,
                "-c",
                src,
                "-o",
                str(obj),
                *OPT,
                *(f"-I{folder}" for folder in include_dirs),
                "-std=c++17",
                "--use_fast_math",
                "-Xcompiler",
                "-fPIC",
                "-lineinfo",
                *gencode_flags(CUDA_ARCHS),
            ]
            print(" ".join(cmd), file=sys.stderr)
            code = subprocess.run(cmd).returncode
            if code != 0:  # a CompileError lets the optional extension fail alone, with this message
                raise CompileError(f"nvcc failed on {src} (exit {code})")
            return str(obj)

        with ThreadPoolExecutor(max_workers=BUILD_JOBS) as pool:
            return list(pool.map(compile_one, cu_files))


def cuda_extension():
    nvcc = find_nvcc()
    if SKIP_CUDA or nvcc is None:
        why = "ZHISUAN_SKIP_CUDA=1" if SKIP_CUDA else "nvcc not found"
        print(f"zhisuan: not building zhisuan.kernels._cuda ({why})", file=sys.stderr)
        return []
    root = cuda_root(nvcc)
    lib_dirs = [d for d in (root / "lib64", root / "lib") if d.exists()]
    return [
        Pybind11Extension(
            "zhisuan.kernels._cuda",
            sources=sources("csrc/cuda", ".cpp") + sources("csrc/cuda", ".cu"),
            include_dirs=[str(root / "include"), "csrc"],
            library_dirs=[str(d) for d in lib_dirs],
            # The static runtime keeps the module importable on a host without libcudart.so;
            # the driver (libcuda) is loaded by the runtime only when a call is made.
            libraries=["cudart_static", "dl", "rt", "pthread"],
            extra_compile_args=[*OPT],
            cxx_std=17,
            optional=True,
        )
    ]


ParallelCompile("ZHISUAN_BUILD_JOBS", default=0).install()  # the C++ sources of each extension at once

cpu_extension = Pybind11Extension(
    "zhisuan.kernels._C",
    sources=["csrc/bindings.cpp", *sources("csrc/cpu", ".cpp")],
    include_dirs=["csrc"],
    extra_compile_args=CPU_FLAGS,
    extra_link_args=["-fopenmp", "-lrt"],
    cxx_std=17,
    optional=True,
)

# The repository's folders -> their place in the zhisuan namespace.
PACKAGE_DIRS = {"zhisuan.kernels": "kernels", "zhisuan.bench": "bench"}
PACKAGES = [
    f"zhisuan.{package}" for package in find_packages(include=["kernels", "kernels.*", "bench", "bench.*"])
]

setup(
    packages=PACKAGES,
    package_dir=PACKAGE_DIRS,
    ext_modules=[cpu_extension, *cuda_extension()],
    cmdclass={"build_ext": BuildExt},
)
