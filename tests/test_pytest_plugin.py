"""The kernel_benchmark pytest plugin, used as pytest-benchmark's `benchmark` is used.

Real pytest runs in subprocesses (the plugin is installed through the pytest11 entry point): the
fixture returns the function's value and takes its arguments; groups come from the marker or the
argument; pytest-benchmark's switches (and ours, without it) skip, select and disable; the terminal
table has pytest-benchmark's columns; the JSON is pytest-benchmark's, read by its own tools and by
every zhisuan reader.
"""

import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest

from zhisuan.bench.cli import main
from zhisuan.bench.core import pytest_json
from zhisuan.bench.core.result_files import read_results
from zhisuan.bench.gate import pytest_plugin

pytest_benchmark_stats = pytest.importorskip("pytest_benchmark.stats")

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "test_kernel_benchmark_example.py"

USAGE_TEST = """
import os

import pytest
import torch

DISABLED = os.environ.get("EXPECT_DISABLED") == "1"


def scaled_sum(x, *, scale):
    return float(x.sum()) * scale


def test_returns_the_value(kernel_benchmark):
    x = torch.rand(1025) + 0.5
    assert kernel_benchmark(scaled_sum, x, scale=2.0) == pytest.approx(2.0 * float(x.sum()))
    assert kernel_benchmark.disabled == DISABLED and (kernel_benchmark.result is None) == DISABLED
    if not DISABLED:
        assert len(kernel_benchmark.result.samples_s) == 5 and kernel_benchmark.result.median_s > 0


def test_function_keywords_are_the_functions(kernel_benchmark):
    ones = kernel_benchmark(torch.ones, 7, device="cpu", dtype=torch.float64)  # torch.ones' own keywords
    assert ones.dtype == torch.float64 and ones.shape == (7,)


@pytest.mark.benchmark(group="marked")
def test_groups(kernel_benchmark):
    a = torch.randn(97, 97)
    assert kernel_benchmark.group == "marked"
    product = kernel_benchmark.measure(torch.mm, args=(a, a), name="by-marker", flops=2 * 97**3)
    torch.testing.assert_close(product, a @ a)
    kernel_benchmark.measure(torch.add, kwargs={"input": a, "other": a}, name="by-argument", group="argument")
    with pytest.raises(ValueError, match="already measured 'by-marker'; give each measurement in one test its own name="):
        kernel_benchmark.measure(torch.mm, args=(a, a), name="by-marker")


def test_plain():
    assert sum(range(7)) == 21


def test_pytest_benchmark(benchmark):
    assert benchmark.pedantic(sum, args=(range(100),), rounds=5) == 4950
"""

KERNEL_TEST = """
import os

import torch

torch.set_num_threads(1)
WORK = int(os.environ["WORK"])


def test_mm(kernel_benchmark):
    a, b = torch.randn(256, 256), torch.randn(256, 256)  # ~1 ms: cache-cold start small beside it

    def kernel():
        for _ in range(WORK):
            c = torch.mm(a, b)
        return c

    reference = a.double() @ b.double()
    # 256-term fp32 sums: the default 4 ulp of max|reference| failed 8 of 300 random draws
    tolerance = 256 * torch.finfo(torch.float32).eps * float(reference.abs().max())
    kernel_benchmark.measure(kernel, flops=2 * 256**3 * WORK, device="cpu", dtype="fp32", iters=30,
                             reference=reference, tolerance=tolerance)  # fmt: skip
    assert len(kernel_benchmark.result.samples_s) == 30 and kernel_benchmark.result.flops_per_s > 0
"""

COLUMNS = ["Min", "Max", "Mean", "StdDev", "Median", "IQR", "Rounds", "FLOP/s", "% peak"]
KERNEL_TESTS = ("test_returns_the_value", "test_function_keywords_are_the_functions", "test_groups")


def pytest_run(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(cwd), *args],
        cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


def outcomes(junit_xml: Path) -> dict[str, str]:
    """{test name: PASSED/SKIPPED/FAILED} from a run's --junitxml report."""
    found = {}
    for case in ElementTree.parse(junit_xml).iter("testcase"):
        kinds = {child.tag for child in case}
        failed = kinds & {"failure", "error"}
        found[case.get("name")] = "SKIPPED" if "skipped" in kinds else "FAILED" if failed else "PASSED"
    return found


def without_pytest_benchmark(tmp_path: Path) -> dict:
    """The environment of a pytest run in which `import pytest_benchmark` fails, as when not installed."""
    shim = tmp_path / "no-pytest-benchmark" / "pytest_benchmark"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "__init__.py").write_text("raise ImportError('pytest-benchmark hidden by the test')\n")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(shim.parent), os.environ.get("PYTHONPATH")]))}


@pytest.mark.parametrize("n", [1, 2, 7, 97, 1025])
def test_stats_block_comes_from_pytest_benchmark(n):
    data = np.random.default_rng(n).lognormal(-7, 0.3, n).tolist()
    block = pytest_json.stats_of(data)
    assert set(block) == {*pytest_benchmark_stats.Stats.fields, "data", "iterations"}
    assert (block["min"], block["max"], block["rounds"]) == (min(data), max(data), n)
    assert block["median"] == statistics.median(data)
    assert block["mean"] == pytest.approx(statistics.fmean(data))
    assert block["data"] == data and block["iterations"] == 1


def test_writing_needs_pytest_benchmark_reading_does_not(tmp_path, monkeypatch):
    path = tmp_path / "kernel.json"
    entry = pytest_json.benchmark_entry(
        _result([3e-3, 4e-3, 5e-3]), name="test_mm", fullname="t.py::test_mm", params=None, param=None,
        options={}, group="mm", extra_info={"note": "kept"},
    )  # fmt: skip
    pytest_json.write(path, [entry])
    monkeypatch.setitem(sys.modules, "pytest_benchmark", None)  # `import pytest_benchmark` now fails
    monkeypatch.setitem(sys.modules, "pytest_benchmark.stats", None)
    with pytest.raises(pytest_json.PytestBenchmarkMissing, match="needs pytest-benchmark.*pip install"):
        pytest_json.write(tmp_path / "again.json", [entry])
    with pytest.raises(pytest_json.PytestBenchmarkMissing, match="pip install pytest-benchmark"):
        pytest_json.stats_of([1e-3])
    (read,) = read_results(path)
    assert read.samples_s == [3e-3, 4e-3, 5e-3] and read.backend == "mm-kernel"
    saved = json.loads(path.read_text())["benchmarks"][0]
    assert saved["group"] == "mm" and saved["extra_info"]["note"] == "kept"


def _result(samples):
    from zhisuan.bench.core.results import Result

    return Result(kind="pytest", op="t.py::test_mm", backend="mm-kernel", shape={}, dtype="fp32",
                  device="cpu", device_name="test cpu", samples_s=samples, median_s=statistics.median(samples))  # fmt: skip


KERNEL_PASS = dict.fromkeys(KERNEL_TESTS, "PASSED")
KERNEL_SKIP = dict.fromkeys(KERNEL_TESTS, "SKIPPED")


@pytest.mark.parametrize(
    "switch, hidden, expected",
    [
        ("", False, {**KERNEL_PASS, "test_plain": "PASSED", "test_pytest_benchmark": "PASSED"}),
        ("--benchmark-skip", False, {**KERNEL_SKIP, "test_plain": "PASSED", "test_pytest_benchmark": "SKIPPED"}),
        ("--benchmark-only", False, {**KERNEL_PASS, "test_plain": "SKIPPED", "test_pytest_benchmark": "PASSED"}),
        ("--benchmark-disable", False, {**KERNEL_PASS, "test_plain": "PASSED", "test_pytest_benchmark": "PASSED"}),
        ("--kernel-benchmark-only", False, {**KERNEL_PASS, "test_plain": "SKIPPED", "test_pytest_benchmark": "SKIPPED"}),
        ("--kernel-benchmark-skip", True, {**KERNEL_SKIP, "test_plain": "PASSED"}),
        ("--kernel-benchmark-only", True, {**KERNEL_PASS, "test_plain": "SKIPPED"}),
        ("--kernel-benchmark-disable", True, {**KERNEL_PASS, "test_plain": "PASSED"}),
    ],
)  # fmt: skip
def test_switches_skip_select_and_disable(tmp_path, switch, hidden, expected):
    (tmp_path / "test_usage.py").write_text(USAGE_TEST)
    disabled = switch.endswith("-disable")
    env = without_pytest_benchmark(tmp_path) if hidden else {}
    env["EXPECT_DISABLED"] = "1" if disabled else "0"
    args = ["test_usage.py", "--strict-markers", "--kernel-benchmark-iters", "5", "--junitxml", "junit.xml"]
    args += [switch] if switch else []
    if hidden:
        args += ["-p", "no:benchmark", "-k", "not test_pytest_benchmark"]
    run = pytest_run(tmp_path, *args, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert outcomes(tmp_path / "junit.xml") == expected, run.stdout
    ran_kernels = expected["test_groups"] == "PASSED" and not disabled
    assert ("Name (time in" in run.stdout) == ran_kernels, run.stdout
    if ran_kernels:
        assert ("pytest-benchmark is not installed" in run.stdout) == hidden, run.stdout


def test_json_needs_pytest_benchmark_with_a_one_line_error(tmp_path):
    (tmp_path / "test_usage.py").write_text(USAGE_TEST)
    run = pytest_run(tmp_path, "test_usage.py", "-p", "no:benchmark", "--kernel-benchmark-json", "k.json",
                     env=without_pytest_benchmark(tmp_path))  # fmt: skip
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.stdout + run.stderr
    assert (
        "ERROR: --kernel-benchmark-json: writing pytest-benchmark JSON needs pytest-benchmark for its "
        "statistics: pip install pytest-benchmark" in run.stderr
    )
    assert not (tmp_path / "k.json").exists()


def test_contradicting_switches_are_refused(tmp_path):
    run = pytest_run(tmp_path, "--kernel-benchmark-only", "--kernel-benchmark-disable")
    assert run.returncode == pytest.ExitCode.USAGE_ERROR
    assert "--kernel-benchmark-only and --kernel-benchmark-disable contradict each other" in run.stderr


def test_table_and_json_are_grouped(tmp_path):
    (tmp_path / "test_usage.py").write_text(USAGE_TEST)
    run = pytest_run(tmp_path, "test_usage.py", "--kernel-benchmark-iters", "5", "--kernel-benchmark-json", "k.json",
                     env={"EXPECT_DISABLED": "0"})  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    text = run.stdout
    titles = re.findall(r"-+ (kernel_benchmark.*?) -+$", text, flags=re.M)
    assert titles == [
        "kernel_benchmark: 2 measurement(s)",
        "kernel_benchmark 'argument': 1 measurement(s)",
        "kernel_benchmark 'marked': 1 measurement(s)",
    ]
    header = next(line for line in text.splitlines() if line.startswith("Name (time in") and "FLOP/s" in line)
    assert re.split(r"  +", header.strip())[1:] == COLUMNS
    marker_row = next(line for line in text.splitlines() if line.startswith("test_groups::by-marker"))
    assert re.search(r" 5 +[\d.]+ [kMG]FLOP/s +— *$", marker_row), marker_row  # no dtype given: no peak
    assert "kernel_benchmark: 4 result(s) written to k.json" in text
    entries = {e["name"]: e for e in json.loads((tmp_path / "k.json").read_text())["benchmarks"]}
    assert {name: e["group"] for name, e in entries.items()} == {
        "test_returns_the_value": None,
        "test_function_keywords_are_the_functions": None,
        "test_groups::by-marker": "marked",
        "test_groups::by-argument": "argument",
    }
    assert entries["test_groups::by-marker"]["extra_info"]["flops"] == 2 * 97**3
    assert all(e["stats"]["rounds"] == 5 == len(e["stats"]["data"]) for e in entries.values())


WRONG_KERNEL_TEST = """
import torch


def test_right(kernel_benchmark):
    a = torch.randn(7, 7)
    kernel_benchmark.measure(torch.mm, args=(a, a), reference=a.double() @ a.double(), tolerance=1e-4, iters=5)


def test_wrong(kernel_benchmark):
    a = torch.randn(7, 7)
    kernel_benchmark.measure(torch.add, args=(a, a), reference=a.double() @ a.double(), tolerance=1e-4, iters=5)
"""


def test_a_measurement_whose_check_failed_is_named_and_the_others_are_written(tmp_path):
    (tmp_path / "test_wrong.py").write_text(WRONG_KERNEL_TEST)
    run = pytest_run(tmp_path, "test_wrong.py", "--kernel-benchmark-json", "k.json")
    assert run.returncode == 0, run.stdout + run.stderr  # measure returns; the test decides what fails
    assert "kernel_benchmark: test_wrong.py::test_wrong not timed: check-failed: " in run.stdout
    assert "kernel_benchmark: 1 result(s) written to k.json" in run.stdout
    (entry,) = json.loads((tmp_path / "k.json").read_text())["benchmarks"]
    assert entry["name"] == "test_right" and entry["stats"]["rounds"] == 5


def test_zhisuan_and_pytest_benchmark_read_the_fixture_json(tmp_path):
    (tmp_path / "test_kernel.py").write_text(KERNEL_TEST)
    base, cur = tmp_path / "base.json", tmp_path / "cur.json"

    # 1. The documented example and a small kernel; our JSON written.
    first = pytest_run(
        tmp_path, str(EXAMPLE), "test_kernel.py", f"--kernel-benchmark-json={base}", env={"WORK": "1"}
    )
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"kernel_benchmark: 5 result(s) written to {base}" in first.stdout
    saved = json.loads(base.read_text())
    assert set(saved) == {"machine_info", "commit_info", "benchmarks", "datetime", "version"}
    assert saved["version"] == pytest_json.pytest_benchmark_version()
    entry = next(b for b in saved["benchmarks"] if b["name"] == "test_scaled_matmul_speed[97-512-1025]::ours")
    assert entry["params"] == {"m": 97, "n": 512, "k": 1025} and entry["group"] == "scaled matmul 97x512x1025"
    assert entry["extra_info"]["flops"] == 2 * 97 * 512 * 1025
    assert entry["stats"]["rounds"] == 50 and len(entry["stats"]["data"]) == 50
    assert entry["extra_info"]["zhisuan"]["device_name"] == entry["extra_info"]["device_name"]

    # 2. Four times the work: zhisuan compare, the gate for kernel_benchmark results, fails. Files
    # without rounds are judged over blocks of consecutive samples: 30 samples make 10 blocks (15 made
    # 5, and a base run that drifted left a 2.3x slowdown "undecided" once in CI).
    slow = pytest_run(tmp_path, "test_kernel.py", "--kernel-benchmark-json", str(cur), env={"WORK": "4"})
    assert slow.returncode == 0, slow.stdout + slow.stderr
    assert main(["compare", str(base), str(cur), "--allow-missing"]) == 1

    # 3. Every zhisuan reader takes the file: report, compare (against itself: no regression), history add.
    assert main(["report", str(base), "--markdown", str(tmp_path / "report.md")]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "5 results: 5 ok" in report and report.count("| ours |") == 2 and "test\\_mm" in report
    assert main(["compare", str(base), str(base)]) == 0
    db = str(tmp_path / "history.db")
    assert main(["history", "add", "--db", db, str(base)]) == 0
    assert main(["history", "runs", "--db", db]) == 0

    # 4. pytest-benchmark reads it too: as a saved run to compare against, and in its compare command.
    loaded = pytest_run(tmp_path, "test_kernel.py", "--benchmark-compare=base.json", env={"WORK": "1"})
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert "Comparing against benchmarks from" in loaded.stdout + loaded.stderr
    assert "Failed to load" not in loaded.stdout + loaded.stderr
    shown = subprocess.run([sys.executable, "-m", "pytest_benchmark", "compare", str(base), str(cur)],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert shown.stdout.count("test_mm") == 2, shown.stdout  # one row per file
    assert "test_scaled_matmul_speed[97-512-1025]::ours" in shown.stdout


def test_unused_plugin_adds_no_per_test_work(request):
    """Installed for every pytest run: options, one pass over the collected items, session-end hooks."""
    assert request.config.pluginmanager.has_plugin("zhisuan")  # loaded here through pytest11
    assert "kernel_benchmark" not in request.fixturenames  # so not autouse: unused, it never runs
    hooks = {name for name in vars(pytest_plugin) if name.startswith("pytest_")}
    assert hooks == {
        "pytest_addoption",
        "pytest_configure",
        "pytest_collection_modifyitems",
        "pytest_sessionfinish",
        "pytest_terminal_summary",
    }
