"""History by commit and by branch: what each run stores, finding runs, `zhisuan history compare`."""

import shutil
import sqlite3
import subprocess
import xml.etree.ElementTree as ET

import pytest
from gate_results import ENV, failed_result, timed_result, write_results

from zhisuan.bench.cli import main
from zhisuan.bench.gate.commits import Checkout, branch_of_run, read_checkout
from zhisuan.bench.gate.history import History

SHA_A = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
SHA_B = "b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f80"


def run(
    run_id, median_s=1e-3, *, sha=SHA_A[:7], branch=None, timestamp=1.7e9, seed=0, backends=("cpp", "torch")
):
    env = {**ENV, "git_sha": sha} | ({"git_branch": branch} if branch else {})
    return [
        timed_result(median_s, seed=seed + i, backend=b, run_id=run_id, timestamp=timestamp, env=env)
        for i, b in enumerate(backends)
    ]


@pytest.fixture
def db(tmp_path):
    return tmp_path / "history.db"


def test_the_branch_of_a_run_given_named_or_read_from_the_checkout():
    members = run("r", branch="feature")
    here = Checkout(SHA_A, "main")
    assert branch_of_run(members, "release", here) == "release"  # --branch wins
    assert branch_of_run(members, None, here) == "feature"  # the results' own environment
    plain = run("r")
    assert branch_of_run(plain, None, here) == "main"  # the checkout, at the run's commit (short vs full)
    assert branch_of_run(plain, None, Checkout(SHA_B, "main")) is None  # a checkout of another commit
    assert branch_of_run(plain, None, Checkout(SHA_A, None)) is None  # detached
    assert branch_of_run(plain, None, None) is None
    mixed = run("r", branch="x")[:1] + run("r", branch="y")[1:]
    assert branch_of_run(mixed, None, here) is None  # the results disagree: no guess


def test_add_stores_commit_and_branch_and_lists_runs_by_branch(db):
    with History(db) as h:
        added = h.add(run("m1", branch="main") + run("f1", sha=SHA_B[:9], timestamp=1.8e9), branch=None)
        assert [(a.run_id, a.branch) for a in added] == [("m1", "main"), ("f1", None)]
        assert h.add(run("f2", sha=SHA_B[:9], timestamp=1.9e9), branch="feature")[0].branch == "feature"
        assert h.add(run("m1"), branch="other")[0].branch == "main"  # a stored run keeps its branch
        assert [r.run_id for r in h.runs(branch="feature")] == ["f2"]
        assert h.branches() == ["feature", "main"]
        assert h.runs()[0].shas == [SHA_A[:7]]


def test_a_version_1_database_gains_the_branch_column(db):
    con = sqlite3.connect(db)
    con.executescript(
        "CREATE TABLE runs (run_id TEXT PRIMARY KEY, timestamp REAL NOT NULL, added_at REAL NOT NULL, "
        "device_names TEXT NOT NULL, git_sha TEXT, source TEXT);"
        "CREATE TABLE results (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, bench_key TEXT NOT NULL, "
        "label TEXT NOT NULL, device_name TEXT NOT NULL, status TEXT NOT NULL, median_s REAL, "
        "timestamp REAL NOT NULL, record TEXT NOT NULL, UNIQUE (run_id, bench_key));"
        "CREATE TABLE baselines (name TEXT PRIMARY KEY, run_id TEXT NOT NULL, set_at REAL NOT NULL);"
        "INSERT INTO runs VALUES ('old', 1.6e9, 1.6e9, '[\"Test CPU 9000\"]', 'abc1234', NULL);"
        "PRAGMA user_version = 1;"
    )
    con.close()
    with History(db) as h:
        assert [(r.run_id, r.branch) for r in h.runs()] == [("old", None)]
        h.add(run("new", branch="main", timestamp=1.8e9))
        assert [r.branch for r in h.runs()] == [None, "main"]
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 2
    con.close()


def test_runs_of_a_commit_by_short_or_full_sha(db):
    with History(db) as h:
        h.add(run("a1", sha=SHA_A[:7]) + run("a2", sha=SHA_A, timestamp=1.8e9) + run("b1", sha=SHA_B[:7]))
        assert [r.run_id for r in h.runs_of_commit(SHA_A)] == ["a1", "a2"]  # stored short, given full
        assert [r.run_id for r in h.runs_of_commit(SHA_A[:5].upper())] == ["a1", "a2"]
        assert [r.run_id for r in h.runs_of_commit(SHA_A[:12], exclude={"a1"})] == ["a2"]
        with pytest.raises(ValueError, match="no run of commit"):
            h.runs_of_commit("ffff")
        with pytest.raises(ValueError, match="expected a git SHA"):
            h.runs_of_commit("abc")
        with pytest.raises(ValueError, match="expected a git SHA"):
            h.runs_of_commit("main")
        with pytest.raises(ValueError, match="2 run\\(s\\), none on Other GPU"):
            h.runs_of_commit(SHA_A[:7], device_names={"Other GPU"})
        h.add(run("c1", sha="a1b2c3ff00"))
        with pytest.raises(ValueError, match="ambiguous"):
            h.runs_of_commit("a1b2c3")


def test_the_last_runs_of_a_branch(db):
    with History(db) as h:
        for i, branch in enumerate(["main", "feature", "main", "main", "feature"]):
            h.add(run(f"r{i}", timestamp=1.7e9 + i), branch=branch)
        assert [r.run_id for r in h.last_runs(2, "main")] == ["r2", "r3"]
        assert [r.run_id for r in h.last_runs(9, "feature", exclude={"r4"})] == ["r1"]
        assert [r.run_id for r in h.last_runs(2)] == ["r3", "r4"]
        with pytest.raises(ValueError, match="no runs of branch 'nope'.*branches: feature, main"):
            h.last_runs(3, "nope")


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_read_checkout_and_add_without_branch(tmp_path, db, monkeypatch, capsys):
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=repo, check=True, capture_output=True, text=True
        ).stdout.strip()

    git("init", "-q", "-b", "feature/x")
    (repo / "f.txt").write_text("1")
    git("add", "f.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = git("rev-parse", "HEAD")
    assert read_checkout(repo) == Checkout(head, "feature/x")
    assert read_checkout(tmp_path / "nowhere-near-git") is None or read_checkout(tmp_path).sha != head
    monkeypatch.chdir(repo)
    here = write_results(tmp_path / "here.jsonl", run("here", sha=head[:7]))
    elsewhere = write_results(tmp_path / "elsewhere.jsonl", run("elsewhere", sha=SHA_B[:7]))
    assert main(["history", "add", "--db", str(db), here, elsewhere]) == 0
    out = capsys.readouterr().out
    assert (
        "run here: 2 result(s) added, branch feature/x" in out
        and "run elsewhere: 2 result(s) added, branch -" in out
    )
    git("checkout", "-q", "--detach")
    assert read_checkout(repo) == Checkout(head, None)


def cli(db, *args):
    return main(["history", "compare", "--db", str(db), *args])


def test_compare_by_commit(tmp_path, db, capsys):
    with History(db) as h:
        h.add(run("a1", 1.00e-3, sha=SHA_A[:7], seed=0) + run("a2", 1.02e-3, sha=SHA_A[:7], seed=10, timestamp=1.71e9)
              + run("a3", 0.99e-3, sha=SHA_A[:7], seed=20, timestamp=1.72e9))  # fmt: skip
        h.add(run("b1", 1.30e-3, sha=SHA_B[:8], seed=30, timestamp=1.8e9))
        h.add(run("same", 1.00e-3, sha="cccc1234", seed=40, timestamp=1.9e9))
    md, junit = tmp_path / "c.md", tmp_path / "c.xml"
    assert (
        cli(db, "--commit", SHA_A[:7], "--commit", SHA_B, "--markdown", str(md), "--junit", str(junit)) == 1
    )
    out = capsys.readouterr().out
    assert f"baseline: commit {SHA_A[:7]} (3 runs); current: commit {SHA_B} (1 run)" in out
    assert "regressed" in out and "+2" in out  # +27-31 % against the median run of A (1.00 ms)
    assert "FAIL: performance regressed" in md.read_text() and "3 runs" in md.read_text()
    suite = ET.parse(junit).getroot()
    assert suite.get("failures") == "2"
    # Commit A against itself is no comparison; the same code on another commit passes.
    assert cli(db, "--commit", SHA_A[:7], "--commit", "cccc1234") == 0
    assert "(3 runs); current: commit cccc1234 (1 run)" in capsys.readouterr().out
    # A results file against a commit.
    file = write_results(tmp_path / "cur.jsonl", run("cur", 1.01e-3, sha="dddd0000", seed=50, timestamp=2e9))
    assert cli(db, file, "--commit", SHA_A[:9]) == 0


def test_compare_by_commit_refuses_what_it_cannot_compare(tmp_path, db, capsys):
    with History(db) as h:
        h.add(run("a1", sha=SHA_A[:7]))
        h.add(run("b1", sha=SHA_B[:7], timestamp=1.8e9)[:1] + [failed_result(run_id="b1", backend="torch",
              timestamp=1.8e9, env={**ENV, "git_sha": SHA_B[:7]})])  # fmt: skip
    assert cli(db, "--commit", SHA_A[:7], "--commit", SHA_B[:7]) == 2  # a crash is never a pass
    assert "current run failed" in capsys.readouterr().err
    cases = [
        ((), "give the current results"),
        (("--commit", SHA_A[:7]), "say what to compare against"),
        (
            ("--commit", SHA_A[:7], "--commit", SHA_B[:7], "--last", "3"),
            "give one baseline, not --commit and --last",
        ),
        (("x.jsonl", "--commit", "aaaa", "--commit", "bbbb"), "at most one --commit"),
        (("--commit", "a", "--commit", "b", "--commit", "c"), "at most twice"),
        (("x.jsonl", "--baseline", "main", "--branch", "main"), "--branch needs --last"),
        (
            ("--commit", SHA_A[:7], "--commit", SHA_A[:7]),
            "has 1 run(s), none on Test CPU 9000 other than the current results",
        ),
        (("--commit", SHA_A[:7], "--commit", "zz99"), "expected a git SHA"),
        (("--commit", SHA_A[:7], "--commit", SHA_B[:7], "--add"), "--add stores CURRENT"),
    ]
    for args, message in cases:
        assert cli(db, *args) == 2, args
        assert message in capsys.readouterr().err, args


def test_compare_against_the_last_runs_of_a_branch_uses_their_spread(tmp_path, db, capsys):
    with History(db) as h:
        for i, m in enumerate([1.00e-3, 1.08e-3, 0.96e-3, 1.04e-3, 1.02e-3]):  # main: 12 % from run to run
            h.add(run(f"m{i}", m, seed=10 * i, timestamp=1.7e9 + i, backends=("cpp",)), branch="main")
        h.add(run("f0", 2e-3, seed=99, timestamp=1.75e9, backends=("cpp",)), branch="feature")  # not main's
    junit = tmp_path / "j.xml"
    within = write_results(
        tmp_path / "within.jsonl", run("w", 1.10e-3, seed=60, timestamp=1.8e9, backends=("cpp",))
    )
    # Against main's median run (1.02 ms) +8 % is a within-run regression; inside main's spread, it is not.
    assert cli(db, within, "--last", "5", "--branch", "main", "--junit", str(junit)) == 0
    out = capsys.readouterr().out
    assert (
        "baseline: the last runs of branch main (5 runs)" in out
        and "(up to 5), widened by the threshold; 1 within-run verdict(s) inside it made noisy" in out
    )
    assert "within-run test: regressed, but inside the spread of 5 baseline runs" in junit.read_text()
    # Against the single latest run of main, the floor is that run: +8 % stays a regression.
    assert cli(db, within, "--last", "1", "--branch", "main") == 1
    # Beyond the spread: a regression; the feature branch's slow run never entered main's baseline.
    beyond = write_results(
        tmp_path / "beyond.jsonl", run("x", 1.30e-3, seed=70, timestamp=1.8e9, backends=("cpp",))
    )
    assert cli(db, beyond, "--last", "5", "--branch", "main", "--add") == 1
    with History(db) as h:
        assert [r.run_id for r in h.runs(branch="main")][-1] == "m4" and "x" in [r.run_id for r in h.runs()]
    capsys.readouterr()
    # Without --branch the last runs of every branch count: the feature branch's 2 ms run is among the
    # last 3 and widens the spread past +30 %. That is why a baseline is taken from one branch.
    assert cli(db, beyond, "--last", "3") == 0
    assert "baseline: the last runs (3 runs)" in capsys.readouterr().out
    # --baseline: one pinned run, no floor.
    assert main(["history", "baseline", "set", "--db", str(db), "main", "m4"]) == 0
    assert cli(db, within, "--baseline", "main") == 1
    assert "noise floor: none (one baseline run per benchmark)" in capsys.readouterr().out


def test_runs_and_show_name_commit_and_branch(tmp_path, db, capsys):
    with History(db) as h:
        h.add(run("m0", sha=SHA_A[:7], backends=("cpp",)), branch="main")
        h.add(run("f0", 1.3e-3, sha=SHA_B[:10], seed=5, timestamp=1.8e9, backends=("cpp",)), branch="feature")
    assert main(["history", "runs", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert SHA_A[:7] in out and SHA_B[:10] in out and "main" in out and "feature" in out
    assert main(["history", "runs", "--db", str(db), "--branch", "main"]) == 0
    assert SHA_B[:10] not in capsys.readouterr().out
    assert main(["history", "show", "--db", str(db), "matmul/cpp/*"]) == 0
    out = capsys.readouterr().out
    assert (
        SHA_A[:7] in out and "main" in out and SHA_B[:10] in out and "feature" in out and "regressed" in out
    )
    assert main(["history", "show", "--db", str(db), "matmul/cpp/*", "--branch", "main"]) == 0
    assert SHA_B[:10] not in capsys.readouterr().out
    assert main(["history", "show", "--db", str(db), "matmul/cpp/*", "--branch", "nope"]) == 2
    assert "in runs of branch 'nope'" in capsys.readouterr().err
