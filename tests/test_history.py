"""History in SQLite: add, baselines, median of the last N runs, concurrent writers, trends, CLI."""

import multiprocessing
import sqlite3

import pytest
from gate_results import failed_result, timed_result, write_results

from zhisuan.bench.cli import main
from zhisuan.bench.gate import trend
from zhisuan.bench.gate.history import History, label
from zhisuan.bench.gate.settings import GateSettings


def run(run_id, median_s=1e-3, seed=0, timestamp=1.7e9, backends=("cpp", "torch")):
    return [
        timed_result(median_s, seed=seed + i, backend=b, run_id=run_id, timestamp=timestamp)
        for i, b in enumerate(backends)
    ]


@pytest.fixture
def db(tmp_path):
    return tmp_path / "history.db"


def test_add_is_idempotent_and_lists_runs(db):
    with History(db) as h:
        assert h.journal_mode == "wal"
        first = h.add(run("r1") + run("r2", timestamp=1.8e9), source="ci#1")
        assert [(a.run_id, a.added, a.already_present) for a in first] == [("r1", 2, 0), ("r2", 2, 0)]
        assert h.add(run("r1"))[0].already_present == 2
        runs = h.runs()
        assert (
            [r.run_id for r in runs] == ["r1", "r2"] and runs[0].n_results == 2 and runs[0].source == "ci#1"
        )
        assert runs[0].device_names == ["Test CPU 9000"] and runs[0].git_sha == "abc1234"
        stored = h.run_results("r1")
        assert stored[0].samples_s == run("r1")[0].samples_s  # every sample kept
        # Results without a run id are one new run together.
        anonymous = h.add(run(""))
        assert len(anonymous) == 1 and anonymous[0].added == 2


def test_baselines_and_references(db):
    with History(db) as h:
        h.add(run("20260101-a") + run("20260102-b", timestamp=1.8e9))
        assert h.set_baseline("main") == "20260102-b"  # default: the latest run
        assert h.set_baseline("release", "20260101") == "20260101-a"  # a unique prefix
        assert h.baselines() == {"main": "20260102-b", "release": "20260101-a"}
        assert {r.run_id for r in h.resolve("release")} == {"20260101-a"}
        assert {r.run_id for r in h.resolve("last")} == {"20260102-b"}
        assert {r.run_id for r in h.resolve("run/20260101-a")} == {"20260101-a"}
        with pytest.raises(ValueError, match="2 runs"):
            h.find_run("2026")
        with pytest.raises(ValueError, match="no such baseline.*main, release"):
            h.resolve("nightly")
        with pytest.raises(ValueError, match="not allowed"):
            h.set_baseline("last")


def test_median_of_last_n_runs_picks_the_median_run(db):
    medians = [1.0e-3, 5.0e-3, 1.2e-3, 1.1e-3, 0.5e-3]  # run 1 is old; run 2 an outlier
    with History(db) as h:
        for i, m in enumerate(medians):
            h.add(run(f"r{i}", m, seed=i, timestamp=1.7e9 + i, backends=("cpp",)))
        h.add([failed_result(run_id="r5", timestamp=1.8e9)])
        chosen = h.median_of_last(4, exclude={"r5"})
        assert [r.run_id for r in chosen] == ["r3"]  # of 5.0, 1.2, 1.1, 0.5 ms: the lower median, 1.1
        assert [r.run_id for r in h.median_of_last(1)] == []  # the last run only failed: no baseline
        with pytest.raises(ValueError, match="at least 1"):
            h.median_of_last(0)


def _writer(path, worker, runs):
    with History(path) as h:
        for i in range(runs):
            h.add(run(f"w{worker}-{i}", seed=i, backends=("cpp", "torch", "mine")))


def test_concurrent_writers_do_not_corrupt(db):
    """Four processes adding at once to a fresh file: every result arrives, the file checks clean."""
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(db, w, 15)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with History(db) as h:
        assert len(h.runs()) == 60 and sum(r.n_results for r in h.runs()) == 180
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()


def test_unusable_database_files(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ValueError, match="not a usable SQLite database"):
        History(junk)
    future = tmp_path / "future.db"
    con = sqlite3.connect(future)
    con.execute("PRAGMA user_version = 7")
    con.close()
    with pytest.raises(ValueError, match="has version 7"):
        History(future)


def test_trend_marks_the_step_that_regressed():
    results = [
        timed_result(m, seed=i, run_id=f"r{i}", timestamp=1.7e9 + i)
        for i, m in enumerate([1e-3, 1e-3, 1.3e-3, 1.3e-3])
    ]
    results.insert(2, failed_result(run_id="crash", timestamp=1.7e9 + 1.5))
    # Against the previous run alone (window 1): the step, then nothing.
    points = trend.judge(results, GateSettings(), window=1)
    assert [p.verdict for p in points] == [None, "unchanged", None, "regressed", "unchanged"]
    assert [p.commit for p in points] == ["abc1234"] * 5
    # Against the runs before it (default window): the step is marked where it happened; the next
    # run, slower than the median run before it, sits inside their spread, which now holds the step.
    points = trend.judge(results, GateSettings())
    assert [p.verdict for p in points] == [None, "unchanged", None, "regressed", "undecided"]
    assert points[4].within_run_verdict == "regressed" and "inside the spread of 3 runs" in points[4].note
    assert points[3].reference in (results[0], results[1]) and points[3].n_reference_runs == 2
    against_base = trend.judge(results, GateSettings(), baseline=results[0])
    assert [p.verdict for p in against_base] == [None, "unchanged", None, "regressed", "regressed"]
    assert trend.latest_verdict(against_base) == "regressed" and trend.latest_verdict(points[:3]) == "error"
    with pytest.raises(ValueError, match="window must be at least 1"):
        trend.judge(results, GateSettings(), window=0)


def test_history_cli_end_to_end(tmp_path, db, monkeypatch, capsys):
    monkeypatch.setenv("ZHISUAN_HISTORY_DB", str(db))  # the path from the environment variable
    for i, m in enumerate([1e-3, 1.01e-3, 0.99e-3]):
        assert (
            main(
                [
                    "history",
                    "add",
                    write_results(tmp_path / f"r{i}.jsonl", run(f"r{i}", m, seed=3 * i, timestamp=1.7e9 + i)),
                ]
            )
            == 0
        )
    assert main(["history", "baseline", "set", "main", "r1"]) == 0
    assert "baseline 'main' -> run r1" in capsys.readouterr().out

    slow = write_results(tmp_path / "slow.jsonl", run("slow", 1.25e-3, seed=50, timestamp=1.8e9))
    assert main(["history", "compare", slow, "--baseline", "main"]) == 1
    assert main(["history", "compare", slow, "--last", "3", "--add"]) == 1
    # slow is in the history now, but never its own baseline: the last 3 runs other than it.
    assert main(["compare", "history:median/3", slow]) == 1
    capsys.readouterr()
    same = write_results(tmp_path / "same.jsonl", run("same", 1e-3, seed=60, timestamp=1.9e9))
    assert main(["compare", "history:main", same]) == 0

    assert main(["history", "show", "matmul/*"]) == 2
    assert "matches 2 benchmarks" in capsys.readouterr().err
    assert main(["history", "show", "matmul/cpp/*", "--baseline", "main"]) == 0
    out = capsys.readouterr().out
    assert "matmul/cpp/M=256,N=256,K=256/fp32 on Test CPU 9000" in out and "regressed" in out and "+2" in out
    png = tmp_path / "trend.png"
    assert main(["history", "plot", "matmul/cpp/*", "--out", str(png)]) == 0
    assert "1 regression(s) marked" in capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["history", "show"]) == 0 and "matmul/torch/M=256,N=256,K=256/fp32" in capsys.readouterr().out
    assert main(["history", "runs"]) == 0 and "main" in capsys.readouterr().out


def test_label_names_a_benchmark():
    assert label(timed_result()) == "matmul/cpp/M=256,N=256,K=256/fp32"
