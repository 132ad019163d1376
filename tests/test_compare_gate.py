"""The gate over result sets: matching, failed runs, interpreted results, environments, thresholds."""

import pytest
from gate_results import failed_result, timed_result

from zhisuan.bench.core.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from zhisuan.bench.gate import comparison, decision
from zhisuan.bench.gate.envdiff import compare_environments
from zhisuan.bench.gate.settings import GateSettings, load_settings, parse_threshold


def run_gate(baseline, current, **kwargs):
    return comparison.run_gate(baseline, current, **kwargs)


def test_matching_reports_new_missing_and_not_comparable():
    base = [timed_result(seed=1, size=s) for s in (64, 128, 256)]
    base.append(timed_result(seed=2, size=512, interpreted=True))
    cur = [timed_result(seed=3, size=s, run_id="run-b") for s in (128, 256, 1024)]
    cur.append(timed_result(seed=4, size=512, interpreted=True, run_id="run-b"))
    report = run_gate(base, cur, allow_missing=True)
    assert sorted(p.current.shape["M"] for p in report.pairs) == [128, 256]
    assert [r.shape["M"] for r in report.new] == [1024]
    assert [r.shape["M"] for r in report.missing] == [64]
    assert len(report.unmatched) == 1 and "interpreter" in report.unmatched[0].reason
    assert report.exit_code == EXIT_OK
    # Without --allow-missing a vanished benchmark is not a pass.
    strict = run_gate(base, cur)
    assert strict.exit_code == EXIT_USAGE
    assert any("missing from the current run" in p and "M=64" in p for p in strict.problems)


def test_regression_gives_exit_1_and_sorts_first():
    base = [timed_result(seed=1, backend="cpp"), timed_result(seed=2, backend="torch")]
    cur = [
        timed_result(1.2e-3, seed=3, backend="cpp", run_id="b"),
        timed_result(seed=4, backend="torch", run_id="b"),
    ]
    report = run_gate(base, cur)
    assert report.exit_code == EXIT_FAILED
    assert report.pairs[0].verdict == decision.REGRESSED and report.pairs[0].current.backend == "cpp"
    assert report.pairs[1].verdict == decision.UNCHANGED


@pytest.mark.parametrize(
    "status,error", [("error", "RuntimeError: boom"), ("check-failed", "max abs error 1 > 0.1")]
)
def test_failed_current_result_is_cannot_compare_never_regression(status, error):
    base = [timed_result(seed=1), timed_result(seed=2, backend="torch")]
    failed = failed_result(status, error, seed=3, run_id="b")
    cur = [failed, timed_result(2e-3, seed=4, backend="torch", run_id="b")]  # torch also regressed
    report = run_gate(base, cur)
    assert report.exit_code == EXIT_USAGE
    assert any(p.startswith("current run failed") and error in p for p in report.problems)
    # The other benchmark's regression is still reported, but 2 wins: a crash is never a plain fail.
    assert report.by_verdict(decision.REGRESSED)


def test_failed_new_benchmark_still_blocks():
    base = [timed_result(seed=1)]
    cur = [timed_result(seed=2, run_id="b"), failed_result(backend="mine")]
    assert run_gate(base, cur).exit_code == EXIT_USAGE


def test_failed_baseline_result_is_cannot_compare():
    base = [failed_result(error="segfault")]
    report = run_gate(base, [timed_result(seed=2, run_id="b")])
    assert report.exit_code == EXIT_USAGE
    assert "baseline has no timing" in report.problems[0]


def test_only_interpreted_results_leave_nothing_to_compare():
    report = run_gate([timed_result(interpreted=True)], [timed_result(interpreted=True, run_id="b")])
    assert report.exit_code == EXIT_USAGE
    assert "nothing to compare" in report.problems[0]


def test_latest_duplicate_is_used():
    old = timed_result(2e-3, seed=1, timestamp=1.0)
    new = timed_result(1e-3, seed=2, timestamp=2.0)
    report = run_gate([new, old], [timed_result(1e-3, seed=3, run_id="b")])
    assert report.duplicates_dropped == 1 and report.pairs[0].verdict == decision.UNCHANGED


def test_environment_mismatch_blocks_and_says_what_differed():
    base = [timed_result(seed=1)]
    cur = [timed_result(seed=2, env={**base[0].env, "torch": "2.14.0", "git_sha": "def5678"}, run_id="b")]
    report = run_gate(base, cur)
    assert report.exit_code == EXIT_USAGE
    assert "torch: 2.13.0+cpu -> 2.14.0" in report.problems[0]
    assert report.env.describe_notes() == ["git_sha: abc1234 -> def5678"]  # a note, not a blocker
    allowed = run_gate(base, cur, allow_env_mismatch=True)
    assert allowed.exit_code == EXIT_OK and allowed.env.blocking


def test_other_device_blocks_unless_allowed():
    base = [timed_result(seed=1)]
    cur = [timed_result(seed=2, device_name="Other CPU 1", run_id="b")]
    report = run_gate(base, cur)
    assert report.exit_code == EXIT_USAGE
    assert report.problems == [
        "environments differ (pass --allow-env-mismatch to compare anyway): "
        "device: baseline ran on Test CPU 9000; current on Other CPU 1"
    ]
    allowed = run_gate(base, cur, allow_env_mismatch=True)
    assert allowed.exit_code == EXIT_OK and len(allowed.pairs) == 1


def test_clocks_block_only_when_both_readable():
    a = timed_result(env={"sm_clock_mhz": 1980})
    assert compare_environments([a], [timed_result(env={"sm_clock_mhz": 1410})]).blocks
    unreadable = compare_environments([a], [timed_result(env={"sm_clock_mhz": None})])
    assert not unreadable.blocks and "sm_clock_mhz" in unreadable.notes


def test_per_benchmark_thresholds_from_toml(tmp_path):
    config = tmp_path / "gate.toml"
    config.write_text(
        '[defaults]\nthreshold = "4%"\n\n'
        '[[rule]]\nbackend = "torch"\nshape = "M=256,*"\nthreshold = 0.30\n\n'
        '[[rule]]\nop = "matmul"\nalpha = 0.001\n'
    )
    settings = load_settings(config, threshold=0.05, alpha=0.01)
    assert settings.for_result(timed_result(backend="torch")) == (0.30, 0.01)
    assert settings.for_result(timed_result(backend="torch", size=128)) == (0.04, 0.001)
    base = [timed_result(seed=1, backend="torch"), timed_result(seed=2, backend="cpp")]
    cur = [
        timed_result(1.2e-3, seed=3, backend="torch", run_id="b"),
        timed_result(1.2e-3, seed=4, backend="cpp", run_id="b"),
    ]
    verdicts = {p.current.backend: p.verdict for p in run_gate(base, cur, settings=settings).pairs}
    assert verdicts == {"torch": decision.UNCHANGED, "cpp": decision.REGRESSED}


@pytest.mark.parametrize(
    "text,message",
    [
        ("[[rule]]\nop = 'matmul'\n", "sets neither threshold nor alpha"),
        ("[[rule]]\nopp = 'matmul'\nthreshold = 0.1\n", "unknown key(s) opp"),
        ("[defaults]\nalpha = 2\n", "alpha must be between 0 and 1"),
        ("[limits]\n", "unknown section(s) limits"),
        ("[[rule]\n", "not valid TOML"),
    ],
)
def test_bad_thresholds_file_names_the_problem(tmp_path, text, message):
    config = tmp_path / "gate.toml"
    config.write_text(text)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(config)


def test_parse_threshold():
    assert parse_threshold("5%") == pytest.approx(0.05) and parse_threshold("0.1") == 0.1
    with pytest.raises(ValueError, match="ambiguous"):
        parse_threshold("5")
    assert GateSettings().for_result(timed_result()) == (
        decision.DEFAULT_THRESHOLD,
        decision.DEFAULT_ALPHA,
    )


@pytest.mark.parametrize(
    ("steal_base", "steal_current", "floored"),
    [(0.05, 0.0, True), (0.0, 0.05, True), (0.05, 0.05, False), (0.02, 0.0, False)],
)
def test_a_steal_only_one_run_met_widens_the_floor(steal_base, steal_current, floored):
    base = timed_result(rounds=5, round_noise=0.02, seed=1, host={"steal_fraction": steal_base})
    current = timed_result(rounds=5, round_noise=0.02, seed=2, host={"steal_fraction": steal_current})
    variance, why = comparison.busy_floor(base, current)
    assert (variance > 0) == floored
    assert ("the hypervisor took" in why) == floored
