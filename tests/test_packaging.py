"""zhisuan installs under one namespace and clashes with nothing: a real wheel, built from this tree.

Hugging Face's `kernels` (the hub-kernel loader transformers uses) lives at the top level of
site-packages as `kernels/`; a zhisuan that installed its own top-level `kernels/` or `bench/` would
replace it. The wheel is built the way `pip install .` builds it (the C++ extension included; the
CUDA one skipped, ZHISUAN_SKIP_CUDA=1, to save a minute), unpacked beside a top-level `kernels`
package that stands in for Hugging Face's, and both are imported in a fresh interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    env = {**os.environ, "ZHISUAN_SKIP_CUDA": "1"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        env=env,
        capture_output=True,
        timeout=600,
    )
    (path,) = out.glob("zhisuan-*.whl")
    return path


@pytest.mark.slow
def test_the_wheel_installs_nothing_outside_the_zhisuan_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    outside = [n for n in names if not n.startswith(("zhisuan/", "zhisuan-"))]
    assert outside == []
    assert not any(n.startswith("zhisuan/__init__") for n in names)  # a namespace: others may share it
    assert any(n.startswith("zhisuan/kernels/_C.") for n in names)  # the compiled extension, in place
    assert "zhisuan/bench/data/chips.toml" in names and "zhisuan/bench/data/suites/default.toml" in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt")))
    assert b"zhisuan = zhisuan.bench.cli:main" in entry_points
    assert b"zhisuan = zhisuan.bench.gate.pytest_plugin" in entry_points


@pytest.mark.slow
def test_zhisuan_and_another_top_level_kernels_package_both_import(wheel, tmp_path):
    site = tmp_path / "site-packages"
    zipfile.ZipFile(wheel).extractall(site)  # what pip does with a wheel's files
    stand_in = site / "kernels"
    stand_in.mkdir()
    (stand_in / "__init__.py").write_text("def get_kernel(repo_id):\n    return 'hub kernel ' + repo_id\n")
    script = (
        "from kernels import get_kernel\n"
        "assert get_kernel('x') == 'hub kernel x'\n"
        "import torch\n"
        "from zhisuan import kernels, bench\n"
        "import zhisuan.kernels._C\n"
        "a = torch.randn(7, 97)\n"
        "b = torch.randn(97, 5)\n"
        "assert torch.allclose(kernels.matmul(a, b, backend='cpp'), a @ b, atol=1e-4)\n"
        "assert bench.Result.__module__ == 'zhisuan.bench.core.results'\n"
        "print(kernels.__file__)\n"
    )
    # A fresh interpreter, outside the repository, that sees only the unpacked wheel (and the
    # dependencies installed for this Python): no editable finder, no source tree.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", f"import sys\nsys.path.insert(0, {str(site)!r})\n" + script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(site / "zhisuan" / "kernels" / "__init__.py")
