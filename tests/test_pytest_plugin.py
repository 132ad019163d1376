"""The kernel_benchmark pytest plugin: its JSON is pytest-benchmark's, and both compare tools read it.

Real pytest runs in subprocesses (the plugin is installed through the pytest11 entry point):
the documented example, then a small test whose work is raised 4x between two runs, judged by
pytest-benchmark's own --benchmark-compare/--benchmark-compare-fail and by `zhisuan compare`.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zhisuan.bench.cli import main
from zhisuan.bench.core import pytest_json
from zhisuan.bench.gate import pytest_plugin

pytest_benchmark_stats = pytest.importorskip("pytest_benchmark.stats")

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "test_kernel_benchmark_example.py"

KERNEL_TEST = '''
import os

import pytest
import torch

torch.set_num_threads(1)
WORK = int(os.environ["WORK"])


def test_mm(kernel_benchmark):
    a, b = torch.randn(256, 256), torch.randn(256, 256)  # ~1 ms: cache-cold start small beside it

    def kernel():
        for _ in range(WORK):
            torch.mm(a, b)

    r = kernel_benchmark(kernel, flops=2 * 256**3 * WORK, device="cpu", dtype="fp32", iters=15)
    assert len(r.samples_s) == 15 and r.flops_per_s > 0


def test_two_measurements_need_names(kernel_benchmark):
    a = torch.randn(32, 32)
    kernel_benchmark(lambda: a @ a, name="square", iters=5)
    with pytest.raises(ValueError, match="already measured 'square'; give each measurement in one test its own name="):
        kernel_benchmark(lambda: a @ a, name="square", iters=5)
    kernel_benchmark(lambda: a + a, name="add", iters=5)


def test_plain_pytest_benchmark(benchmark):
    """pytest-benchmark's own fixture, beside ours in the same run: no clash."""
    assert benchmark.pedantic(sum, args=(range(100),), rounds=20, iterations=1) == 4950
'''


def pytest_run(cwd: Path, *args: str, work: int = 1) -> subprocess.CompletedProcess:
    env = {**os.environ, "WORK": str(work)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(cwd), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8, 97, 1025])
def test_stats_are_pytest_benchmarks_own(n):
    data = np.random.default_rng(n).lognormal(-7, 0.3, n).tolist()
    theirs = pytest_benchmark_stats.Stats()
    for value in data:
        theirs.update(value)
    ours = pytest_json.stats_of(data)
    for name in pytest_benchmark_stats.Stats.fields:
        assert ours[name] == pytest.approx(getattr(theirs, name), rel=1e-12), name
    assert ours["data"] == data and ours["iterations"] == 1


def test_pytest_benchmark_and_zhisuan_compare_read_the_fixture_json(tmp_path):
    (tmp_path / "test_kernel.py").write_text(KERNEL_TEST)
    base, cur, theirs = tmp_path / "base.json", tmp_path / "cur.json", tmp_path / "pytest-benchmark.json"

    # 1. The documented example and the small kernel; our JSON written.
    first = pytest_run(tmp_path, str(EXAMPLE), "test_kernel.py", "--kernel-benchmark-json", str(base))
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"kernel_benchmark: 5 result(s) written to {base}" in first.stdout
    saved = json.loads(base.read_text())
    assert set(saved) == {"machine_info", "commit_info", "benchmarks", "datetime", "version"}
    entry = next(b for b in saved["benchmarks"] if b["name"] == "test_scaled_matmul_speed[97-512-1025]")
    assert (
        entry["params"] == {"m": 97, "n": 512, "k": 1025}
        and entry["extra_info"]["flops"] == 2 * 97 * 512 * 1025
    )
    assert entry["stats"]["rounds"] == 50 and len(entry["stats"]["data"]) == 50
    assert entry["extra_info"]["zhisuan"]["device_name"] == entry["extra_info"]["device_name"]

    # 2. Four times the work: pytest-benchmark's own gate fails on our saved file...
    slow = pytest_run(
        tmp_path, "test_kernel.py", "-k", "test_mm or plain", "--benchmark-compare=base.json",
        "--benchmark-compare-fail=median:5%",
        "--kernel-benchmark-json", str(cur), f"--benchmark-json={theirs}", work=4,
    )  # fmt: skip
    output = slow.stdout + slow.stderr
    assert slow.returncode != 0 and "Performance has regressed" in output, output
    assert "test_mm (base) - Field 'median' has failed" in output and "Failed to load" not in output, output
    # ... and so does zhisuan compare, on our JSON and on pytest-benchmark's (which holds ours too).
    assert main(["compare", str(base), str(cur), "--allow-missing", "--resamples", "999"]) == 1
    assert main(["compare", str(base), str(theirs), "--allow-missing", "--resamples", "999"]) == 1

    # 3. The same work: pytest-benchmark loads our file and passes a loose gate.
    same = pytest_run(
        tmp_path,
        "test_kernel.py",
        "-k",
        "test_mm or plain",
        "--benchmark-compare=base.json",
        "--benchmark-compare-fail=median:300%",
    )
    assert same.returncode == 0, same.stdout + same.stderr
    assert (
        "Comparing against benchmarks from" in same.stdout + same.stderr
        and "Failed to load" not in same.stdout
    )


def test_unused_plugin_adds_no_per_test_work(request):
    """Installed for every pytest run: only options and session-end hooks, no autouse fixture."""
    assert request.config.pluginmanager.has_plugin("zhisuan")  # loaded here through pytest11
    assert "kernel_benchmark" not in request.fixturenames  # so not autouse: unused, it never runs
    hooks = {name for name in vars(pytest_plugin) if name.startswith("pytest_")}
    assert hooks == {
        "pytest_addoption",
        "pytest_configure",
        "pytest_sessionfinish",
        "pytest_terminal_summary",
    }
