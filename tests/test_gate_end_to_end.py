"""The plain CI flow on real runs of this machine: `zhisuan run` twice, then `zhisuan compare`.

The kernel under test is a bring-your-own-kernel plugin (tests/plugins/zhisuan_testwork.py,
registered through the `zhisuan.backends` entry point) whose work factor comes from the
environment, so each run is its own `zhisuan run` process with its own fresh round processes, as in
CI. Unchanged code must pass; ten times the work is a regression, also when a run landed on a busy
host (other sessions share these 2 cores: the gate then widens its noise floor, see
comparison.busy_floor). One thread per process, as on a shared CI runner (gate_realruns says why).
The rates for 5/10/30% slowdowns over many real runs are in docs/benchmarks/gate.md.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from zhisuan.bench.cli import main
from zhisuan.bench.core.result_files import read_results

PLUGINS = Path(__file__).parent / "plugins"
TESTWORK = ["matmul", "--backend", "testwork", "--shape", "256", "--rounds", "3"]  # 3, not 5-10: test time


def zhisuan_run(path: Path, extra_work: float) -> None:
    env = {**os.environ, "ZHISUAN_TESTWORK_EXTRA": str(extra_work), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(PLUGINS), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    command = [sys.executable, "-m", "zhisuan.bench", "run", *TESTWORK, "--json", str(path)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gate")
    paths = {name: folder / f"{name}.jsonl" for name in ("first", "second", "slower")}
    zhisuan_run(paths["first"], 0)
    zhisuan_run(paths["second"], 0)
    zhisuan_run(paths["slower"], 9)
    return paths


@pytest.mark.slow
def test_each_run_is_made_of_rounds_in_fresh_processes(runs):
    (r,) = read_results(runs["first"])
    sampling = r.extra["sampling"]
    assert r.backend == "testwork" and r.check["passed"] and sampling["unit"] == "process"
    assert len(sampling["round_sizes"]) == 3 and sampling["stop"] == "rounds"


@pytest.mark.slow
def test_two_runs_of_unchanged_code_pass(runs, tmp_path, capsys):
    md = tmp_path / "comment.md"
    assert main(["compare", str(runs["first"]), str(runs["second"]), "--markdown", str(md)]) == 0, (
        md.read_text()
    )
    out = capsys.readouterr().out
    assert "PASS: no regression" in out and "regressed" not in md.read_text().split("\n")[0]


@pytest.mark.slow
def test_ten_times_the_work_is_a_regression(runs, tmp_path, capsys):
    junit = tmp_path / "junit.xml"
    code = main(["compare", str(runs["first"]), str(runs["slower"]), "--junit", str(junit)])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "matmul testwork M=256,N=256,K=256 fp32" in out and "regressed" in out
    assert 'failures="1"' in junit.read_text()
