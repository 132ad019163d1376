"""The decision rule on recorded real runs of the 2-core machine (tests/data/gate_real), taken while
other sessions loaded it (load average 5-8 on 2 cores): `zhisuan run` of 6 matmul benchmarks three
times (base, the same code, and the testwork backend doing 30% more work), a `zhisuan ab` of a
30% slower torch matmul, (quiet host, 2026-11-27) an A/A `zhisuan ab` of the torch attention that
the earlier rule called "improved", and (2026-11-28) two `zhisuan run` of the same code, the first
with 3-7% of its CPU time stolen by the hypervisor (bench/dev/gate_realruns.py made them)."""

import json
from pathlib import Path

import numpy as np

from zhisuan.bench.cli import main
from zhisuan.bench.core.result_files import read_results
from zhisuan.bench.gate import ab_command, comparison, decision
from zhisuan.bench.harness.command import short_of_target

DATA = Path(__file__).parent / "data" / "gate_real"


def test_same_code_on_a_busy_host_passes_and_says_what_it_could_not_decide(capsys):
    assert main(["compare", str(DATA / "busy-base.jsonl"), str(DATA / "busy-same.jsonl")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "regressed" not in out.split("PASS")[0].replace("regressed = ", "")
    assert "a busy host" in out and "cannot decide" in out and "noise floor" in out


def test_same_code_whose_baseline_met_the_hypervisors_steal_passes(monkeypatch):
    """gate-r7 trial 8: the second run was 22% faster as a whole, but the benchmarks moved unevenly
    (one 11%, the rest 20-25%), which the common shift does not take out."""
    base, same = read_results(DATA / "steal-base.jsonl"), read_results(DATA / "steal-same.jsonl")
    assert comparison.steal_share(base[0]) > 0.04 > 0.01 > comparison.steal_share(same[0])
    report = comparison.run_gate(base, same)
    assert report.exit_code == 0
    assert any("the hypervisor took" in p.note for p in report.pairs if p.verdict == decision.UNDECIDED)
    monkeypatch.setattr(comparison, "STEAL_GAP", float("inf"))  # without the steal evidence: a false alarm
    assert comparison.run_gate(base, same).exit_code == 1


def test_a_thirty_percent_slowdown_on_a_busy_host_is_undecided_and_says_why():
    report = comparison.run_gate(
        read_results(DATA / "busy-base.jsonl"), read_results(DATA / "busy-slower30.jsonl")
    )
    slowed = [p for p in report.pairs if p.current.backend == "testwork"]
    assert len(slowed) == 2 and report.exit_code == 0
    for p in slowed:  # +29% and +33% beyond the host's shift, but the benchmarks spread too widely
        assert p.verdict == decision.UNDECIDED and 1.2 < p.ratio < 1.45 and p.ci_high > 1.3
        assert "cannot decide" in p.note and "run-to-run noise" in p.note


def test_ab_epochs_with_stalled_rounds_still_show_the_slowdown():
    (record, _) = [json.loads(line) for line in (DATA / "ab-slower30.jsonl").read_text().splitlines()]
    epochs = record["extra"]["ab"]["log_ratios_by_epoch"]
    assert min(min(e) for e in epochs) < -1  # a round in which a neighbour stalled side B's process
    a = decision.judge(decision.from_epochs(epochs), threshold=ab_command.DEFAULT_THRESHOLD)
    assert a.verdict == decision.REGRESSED and 1.2 < float(a.ratio) < 1.4
    means = [float(np.mean(e)) for e in epochs]  # untrimmed means of the rounds: the stalls hide it
    plain = decision.Evidence(np.mean(means), np.var(means, ddof=1) / len(means), np.var(means, ddof=1),
                              np.float64(len(means) - 1), "epoch")  # fmt: skip
    assert decision.judge(plain, threshold=ab_command.DEFAULT_THRESHOLD).verdict == decision.UNDECIDED


def test_an_a_a_run_whose_few_epochs_agree_by_chance_is_not_decided():
    """Five epochs whose middle three happened to agree: the trimmed spread of the epochs alone
    collapsed (t = -10), though each epoch's own rounds spread by up to 0.3."""
    (record, _) = [json.loads(line) for line in (DATA / "ab-aa-attention.jsonl").read_text().splitlines()]
    epochs = record["extra"]["ab"]["log_ratios_by_epoch"]
    assert len(epochs) == 5 and max(max(e) - min(e) for e in epochs) > 0.3
    medians_only = decision.from_pairs([float(np.median(e)) for e in epochs])
    threshold = ab_command.DEFAULT_THRESHOLD
    assert decision.judge(medians_only, threshold=threshold).verdict == decision.IMPROVED  # the old rule
    a = decision.judge(decision.from_epochs(epochs), threshold=threshold)
    assert a.verdict == decision.UNDECIDED and a.ci_high > 1 and float(a.ratio) < 0.9


def test_the_rounds_bound_leaves_a_well_spread_set_of_epochs_as_it_was():
    epochs = [[0.01, 0.012, 0.011], [0.03, 0.031, 0.029], [-0.01, -0.011, -0.012], [0.02, 0.021, 0.02]]
    bounded, plain = decision.from_epochs(epochs), decision.from_pairs([float(np.median(e)) for e in epochs])
    assert bounded.unit_var == plain.unit_var and bounded.log_ratio == plain.log_ratio


def test_a_run_says_which_benchmarks_stopped_short_of_the_precision_target():
    lines = short_of_target(read_results(DATA / "busy-base.jsonl"))
    assert lines[0].startswith("6 benchmark(s) stopped short of the precision target")
    assert any("matmul testwork M=256,N=256,K=256 fp32" in line and "(max-rounds)" in line for line in lines)
