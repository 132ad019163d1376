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
            assert f"planted: {extra:.0%} more work" in text and target.anchor in text
            compile(text, target.source, "exec")  # still Python
        base = (repo / target.source).read_text()  # the checkout is left at the base commit
        assert "planted" not in base


def test_a_moved_anchor_is_refused_by_name(tmp_path, monkeypatch):
    target = gate_realruns.AB_TARGETS["attention"]
    moved = gate_realruns.AbTarget(target.args, target.source, "    no such line\n", target.plant, False)
    monkeypatch.setitem(gate_realruns.AB_TARGETS, "attention", moved)
    with pytest.raises(SystemExit, match="torch_backend.py: the line the slowdown is planted at is gone"):
        gate_realruns.planted_repo(tmp_path)
