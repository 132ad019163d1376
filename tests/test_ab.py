"""`zhisuan ab`: two versions of this repository in one job, a planted slowdown, the sides, bad input.

The end-to-end tests copy bench/ and kernels/ of this checkout into a throw-away git repository
(two commits: as is, and with the torch matmul doing ten times the work), so ab checks out two real
git worktrees without touching this repository's own. --no-build keeps them short: the torch
backend needs no compiled extension (the cpp one reports itself unavailable there).
"""

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from zhisuan.bench.cli import main
from zhisuan.bench.gate import ab_sides

ROOT = Path(__file__).resolve().parents[1]
PLANTED = "    for _ in range(9):  # planted: ten times the work\n        torch.matmul(a, b)\n"
QUICK = ["matmul", "--shape", "256", "--backend", "torch", "--no-build", "--min-epochs", "2", "--max-epochs", "6",
         "--rounds", "2", "--block-time", "0.05"]  # fmt: skip


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A git repository of this checkout's bench/ and kernels/: HEAD~1 as is, HEAD with a slower torch matmul."""
    repo = tmp_path_factory.mktemp("ab") / "repo"
    for name in ("bench", "kernels"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "as is")
    source = repo / "kernels" / "matmul" / "torch_backend.py"
    text = source.read_text()
    assert "    return torch.matmul(a, b)\n" in text
    source.write_text(
        text.replace("    return torch.matmul(a, b)\n", PLANTED + "    return torch.matmul(a, b)\n")
    )
    git(repo, "commit", "-qam", "planted slowdown")
    return repo


@pytest.fixture
def one_thread(monkeypatch):
    """Both sides single-threaded: on a shared 2-core host two threads stall at each barrier when a
    neighbour preempts one (a 256^3 matmul took 21-32 ms instead of 1), which hides a slowdown."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.mark.slow
def test_a_planted_slowdown_between_two_revisions_is_a_regression(repo, tmp_path, capsys, one_thread):
    md, xml, out = tmp_path / "comment.md", tmp_path / "junit.xml", tmp_path / "ab.jsonl"
    code = main(["ab", "HEAD~1", "HEAD", *QUICK, "--repo", str(repo), "--workdir", str(tmp_path / "work"),
                 "--markdown", str(md), "--junit", str(xml), "--json", str(out)])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1, captured.out + captured.err
    assert "FAIL: performance regressed" in captured.out and "epochs" in captured.out
    assert md.read_text().startswith("### ❌ zhisuan performance gate (zhisuan ab): FAIL")
    assert ET.parse(xml).getroot().find("testsuite").get("failures") == "1"
    records = [json.loads(line) for line in out.read_text().splitlines()]
    sides = {r["extra"]["ab"]["side"]: r for r in records}
    assert set(sides) == {"A", "B"} and sides["B"]["median_s"] > 2 * sides["A"]["median_s"]
    for r in records:  # every sample kept, with the blocks they came in and both checks passed
        assert sum(r["extra"]["sampling"]["round_sizes"]) == len(r["samples_s"]) and r["check"]["passed"]
        assert len(r["extra"]["ab"]["log_ratios_by_epoch"]) == r["extra"]["sampling"]["epochs"] >= 2
    # The revisions were checked out as git worktrees of that repository, not of this one.
    assert str(tmp_path / "work" / "trees") in git(repo, "worktree", "list")


@pytest.mark.slow
def test_the_same_code_from_an_environment_and_a_tree_passes(repo, tmp_path, capsys, one_thread):
    tree = tmp_path / "tree"
    git(repo, "worktree", "add", "-q", "--detach", str(tree), "HEAD~1")  # this checkout's code, as is
    code = main(
        ["ab", f"python:{sys.executable}", f"tree:{tree}", *QUICK, "--workdir", str(tmp_path / "work")]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    assert "regressed" not in captured.out and f"python {sys.executable}" in captured.err


def test_sides_are_resolved_or_refused_in_one_line(repo, tmp_path):
    work = tmp_path / "work"
    python = ab_sides.resolve(
        "A", f"python:{sys.executable}", repo=None, workdir=work, python=None, build=False
    )
    assert python.python == sys.executable and python.tree is None
    side = ab_sides.resolve("B", "HEAD", repo=repo, workdir=work, python=None, build=False)
    assert side.tree.parent == work / "trees" and (side.tree / "kernels" / "matmul").is_dir()
    link = Path(side.env["PYTHONPATH"].split(os.pathsep)[0]) / "zhisuan" / "bench"
    assert link.resolve() == (side.tree / "bench").resolve()
    assert "not built (--no-build)" in side.notes[0]
    for spec, message in (
        ("no-such-revision", "is not a revision of"),
        (f"tree:{tmp_path}", "is not a zhisuan source tree"),
        (f"python:{tmp_path}", "is not an executable Python interpreter"),
    ):
        with pytest.raises(ab_sides.SideError, match=message):
            ab_sides.resolve("A", spec, repo=repo, workdir=work, python=None, build=False)


def fake_tree(root: Path, source: str) -> Path:
    (root / "csrc").mkdir(parents=True)
    (root / "kernels").mkdir()
    (root / "csrc" / "gemm.cpp").write_text(source)
    (root / "setup.py").write_text("# setup\n")
    return root


def test_identical_sources_share_one_build(tmp_path):
    suffix = ab_sides._extension_suffix(sys.executable)
    one, two = fake_tree(tmp_path / "one", "int f();"), fake_tree(tmp_path / "two", "int f();")
    other = fake_tree(tmp_path / "other", "int g();")
    assert ab_sides.build_key(one, sys.executable) == ab_sides.build_key(two, sys.executable)
    assert ab_sides.build_key(one, sys.executable) != ab_sides.build_key(other, sys.executable)
    built = one / "kernels" / f"_C{suffix}"
    built.write_bytes(b"compiled")
    work = tmp_path / "work"
    assert "already built" in ab_sides.ensure_built(one, sys.executable, work)  # and stored by its key
    assert "reused from an identical build" in ab_sides.ensure_built(two, sys.executable, work)
    assert (two / "kernels" / built.name).read_bytes() == b"compiled"
    os.utime(two / "csrc" / "gemm.cpp")  # a source newer than its build: not fresh any more
    assert not ab_sides._fresh(two)


def test_ab_refuses_bad_settings(capsys):
    for argv, message in (
        (["ab", "A", "B", "--threshold", "nan"], "threshold 'nan' is not a finite number"),
        (["ab", "A", "B", "--alpha", "0"], "alpha must be between 0 and 1"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert main(["ab", "A", "B", "--min-epochs", "1"]) == 2
    assert "need 2 <= --min-epochs" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this platform")
def test_one_thread_children_of_an_epoch_share_one_cpu_that_rotates(monkeypatch):
    # Seen on 2 cores: unpinned, A's children stayed on CPU 0 and B's on CPU 1 epoch after epoch,
    # and an A/A run of the same code exited 1 at +7.8%.
    from zhisuan.bench.core import threads
    from zhisuan.bench.harness.worker import Child

    cpus = sorted(os.sched_getaffinity(0))
    try:
        monkeypatch.setattr(threads, "per_rank", lambda local_world=1: 1)
        seen = []
        for epoch in range(2 * len(cpus)):
            os.sched_setaffinity(0, cpus)
            Child(forked=True)._pin(epoch)
            seen.append(sorted(os.sched_getaffinity(0)))
        assert seen == [[cpus[e % len(cpus)]] for e in range(2 * len(cpus))]
        os.sched_setaffinity(0, cpus)
        Child(forked=True)._pin(None)  # an orchestrator that sends no epoch: left alone
        assert sorted(os.sched_getaffinity(0)) == cpus
        Child()._pin(3)  # in process (rounds in_process=True): the caller's CPUs stay
        assert sorted(os.sched_getaffinity(0)) == cpus
        monkeypatch.setattr(threads, "per_rank", lambda local_world=1: 2)
        Child(forked=True)._pin(3)  # several threads: every CPU stays
        assert sorted(os.sched_getaffinity(0)) == cpus
    finally:
        os.sched_setaffinity(0, cpus)


def test_a_side_without_what_the_worker_calls_is_refused_by_name(monkeypatch):
    # The orchestrator's worker times both sides; a side from before a name it calls existed
    # would crash mid-run. Its parent names what is missing, and ab stops there, in one line.
    from zhisuan.bench.gate import ab_measure
    from zhisuan.bench.harness import worker
    from zhisuan.bench.harness.zygote import WorkerError

    assert worker.missing_uses() == []  # this checkout has everything its own worker calls
    monkeypatch.setitem(worker.USES, "zhisuan.bench.harness.checktime", ("time_block", "time_in_2030"))
    monkeypatch.setitem(worker.USES, "zhisuan.bench.no_such_module", ("anything",))
    missing = worker.missing_uses()
    assert missing == ["zhisuan.bench.harness.checktime.time_in_2030", "zhisuan.bench.no_such_module"]
    side = ab_sides.Side("A", "HEAD~9", "HEAD~9 (0123abc)", sys.executable)
    with pytest.raises(
        WorkerError, match=r"side A \(HEAD~9 \(0123abc\)\) lacks .*time_in_2030, zhisuan.bench.no_such"
    ):
        ab_measure._check_import(side, {"zhisuan": str(ROOT), "missing": missing})


@pytest.mark.parametrize(
    ("elapsed_s", "setup_s", "round_s", "rounds"),
    [
        (5.0, 1.2, 0.27, 12),  # one 1.5 ms attention: 12 rounds fit with room to spare
        (45.0, 5.0, 3.2, 3),  # a 12-benchmark suite: 12 rounds would leave time for 4 epochs
        (45.0, 5.0, 1.5, 8),  # in between: as many as fit
        (230.0, 5.0, 3.2, 3),  # no time left: never under the fitted minimum
    ],
)
def test_rounds_are_fitted_so_the_epochs_fit_the_time_budget(elapsed_s, setup_s, round_s, rounds):
    from zhisuan.bench.gate.ab_measure import AbPlan

    timing = (elapsed_s, 1, setup_s, round_s)
    assert AbPlan(max_epochs=12, max_time_s=240.0).fitted_rounds(*timing) == rounds
    assert AbPlan(max_epochs=12, max_time_s=240.0, rounds=5).fitted_rounds(*timing) == 5  # --rounds fixes it
    assert AbPlan(max_epochs=12, max_time_s=None).fitted_rounds(*timing) == 12  # no budget to fit
