"""bench/dev/gate_realruns: the throw-away repository of planted slowdowns that `zhisuan ab` trials
time (one commit per op and size of slowdown, each a valid Python file with the plant in place)."""

import subprocess

import pytest

from zhisuan.bench.dev import gate_realruns


def test_every_op_gets_a_commit_per_slowdown_with_the_plant_in_its_torch_backend(tmp_path):
    shas = gate_realruns.planted_repo(tmp_path)
    repo = tmp_path / "repo"
    assert {"base", "same"} <= set(shas)
    for op, target in gate_realruns.AB_TARGETS.items():
        for extra in gate_realruns.SLOWDOWNS:
            text = subprocess.run(["git", "-C", str(repo), "show", f"{shas[f'{op}-{extra:.2f}']}:{target.source}"],
                                  check=True, capture_output=True, text=True).stdout  # fmt: skip
            assert f"planted: {extra:.0%} slower" in text and target.anchor not in text
            compile(text, target.source, "exec")  # still Python
        base = (repo / target.source).read_text()  # the checkout is left at the base commit
        assert "planted" not in base


def test_a_moved_anchor_is_refused_by_name(tmp_path, monkeypatch):
    target = gate_realruns.AB_TARGETS["attention"]
    moved = gate_realruns.AbTarget(target.args, target.source, "    no such line\n")
    monkeypatch.setitem(gate_realruns.AB_TARGETS, "attention", moved)
    with pytest.raises(SystemExit, match="torch_backend.py: the line the slowdown is planted at is gone"):
        gate_realruns.planted_repo(tmp_path)


def test_a_planted_return_takes_its_share_longer_and_returns_the_same():
    import time

    def work():
        until = time.perf_counter() + 0.02
        while time.perf_counter() < until:
            pass
        return 7

    source = "def planted():\n" + gate_realruns.slower_return("    return work()\n", 0.5)
    scope = {"work": work}
    exec(compile(source, "planted", "exec"), scope)
    start = time.perf_counter()
    assert scope["planted"]() == 7
    assert time.perf_counter() - start >= 0.03  # 20 ms of work, then a spin of half as long
    with pytest.raises(ValueError, match="planted at a return line"):
        gate_realruns.slower_return("    x = 1\n", 0.05)


def test_every_pair_of_a_folders_runs_is_judged(tmp_path):
    # Two trials (30% and 10% planted): 4 same-code runs make 6 A/A pairs; each slower run meets all 4.
    import json

    from gate_results import timed_result, write_results

    def run(seed, slower=1.0):
        return [timed_result(1e-3 * (slower if backend == "testwork" else 1), noise=0.01, n=50, rounds=10,
                             round_noise=0.01, seed=seed * 10 + i, backend=backend, size=size)
                for i, (backend, size) in enumerate((b, s) for b in ("torch", "cpp", "testwork") for s in (128, 256))]  # fmt: skip

    records = []
    for trial, extra in enumerate((0.3, 0.1)):
        for offset, (name, slower) in enumerate((("base", 1.0), ("same", 1.0), ("slower", 1 + 3 * extra))):
            write_results(tmp_path / f"t{trial:02d}-{name}.jsonl", run(3 * trial + offset, slower))
        records += [{"flow": "plain", "trial": trial, "kind": kind, "extra": extra if kind == "slower" else 0}
                    for kind in ("A/A", "slower")]  # fmt: skip
    (tmp_path / "trials.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert gate_realruns.all_pairs(tmp_path) == {"none (A/A)": (6, 6), "+10%": (4, 4), "+30%": (4, 4)}
