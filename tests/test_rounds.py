"""A run in rounds: fresh processes, rotation, the sampling record, adaptive stopping, failures."""

import json
import math
import os
import signal

import pytest
import torch

from zhisuan import bench
from zhisuan.bench.cli import main
from zhisuan.bench.core import precision
from zhisuan.bench.core.results import Result
from zhisuan.bench.harness import rounds, runner
from zhisuan.bench.harness.zygote import WorkerError, Zygote
from zhisuan.kernels import registry


def test_cli_run_takes_each_round_in_a_fresh_process(tmp_path):
    path = tmp_path / "r.jsonl"
    assert main(["run", "matmul", "--backend", "torch", "--shape", "7x97x33", "--iters", "3", "--rounds", "3",
                 "--json", str(path)]) == 0  # fmt: skip
    (record,) = [json.loads(line) for line in path.read_text().splitlines()]
    sampling = record["extra"]["sampling"]
    assert sampling["unit"] == "process" and sampling["round_sizes"] == [3, 3, 3]
    assert sampling["stop"] == "rounds" and len(record["samples_s"]) == 9
    assert math.isfinite(sampling["precision"]) and sampling["target"] == precision.DEFAULT_PRECISION
    assert len(sampling["host"]) == 3 and all(h["cpus"] == os.cpu_count() for h in sampling["host"])
    assert record["check"]["passed"] and record["median_s"] == pytest.approx(sorted(record["samples_s"])[4])


def test_api_rounds_in_process_keep_every_sample_and_say_how_they_stopped():
    (r,) = bench.run("matmul", backends=["torch"], shapes=["17x5x1025"], iters=4, rounds=2)
    sampling = r.extra["sampling"]
    assert (
        sampling["unit"] == "in-process"
        and sampling["round_sizes"] == [4, 4]
        and sampling["stop"] == "rounds"
    )
    assert precision.rounds_of(r) == [pytest.approx(x) for x in precision.round_medians(r.samples_s, [4, 4])]


def test_a_backend_that_goes_wrong_in_a_later_round_is_a_failure_without_timing():
    wrong = {"from round": 3, "round": 0}

    def flaky(a, b):
        out = a @ b
        return out * 1.5 if wrong["round"] >= wrong["from round"] else out  # right at first, wrong later

    registry.register("matmul", "test-flaky", devices=("cpu",), dtypes=(torch.float32,))(flaky)
    try:
        plan = runner.RunPlan("cpu", [runner.Case("matmul", {"M": 7, "N": 9, "K": 11}, torch.float32,
                                                  [registry.registered("matmul")["test-flaky"]])])  # fmt: skip
        (r,) = rounds.run(plan, rounds.RoundPlan(rounds=5, in_process=True),
                          timing_plan=runner.timing.TimingPlan(iters=2),
                          on_round=lambda number, pending: wrong.__setitem__("round", number))  # fmt: skip
    finally:
        registry.unregister("matmul", "test-flaky")
    assert r.status == "check-failed" and r.samples_s == [] and r.flops_per_s is None
    assert r.extra["sampling"]["stop"] == "failed" and r.extra["sampling"]["failed_in_round"] == 3


def fake_result(median_s: float) -> Result:
    return Result(kind="kernel", op="matmul", backend="x", shape={"M": 1}, dtype="fp32", device="cpu",
                  device_name="cpu", samples_s=[median_s], median_s=median_s)  # fmt: skip


@pytest.mark.parametrize(
    "medians,plan,stop",
    [
        ([1.0, 1.001, 0.999, 1.0005, 0.9995], rounds.RoundPlan(), "precision"),
        ([1.0, 1.001, 0.999, 1.0005], rounds.RoundPlan(), None),  # precise, but fewer than MIN_ROUNDS
        ([1.0, 1.5, 0.7, 1.2, 0.9], rounds.RoundPlan(), None),  # spread: go on
        ([1.0, 1.5, 0.7], rounds.RoundPlan(min_rounds=3, max_rounds=3), "max-rounds"),
        ([1.0, 1.5], rounds.RoundPlan(rounds=2), "rounds"),
    ],
)
def test_adaptive_stop(medians, plan, stop):
    tally = rounds.Tally(backend=None)
    for m in medians:
        tally.add(fake_result(m), {})
    assert rounds._stop_reason(tally, plan) == stop


def test_rounds_rotate_cases_and_backends():
    assert rounds.rotated([1, 2, 3], 4) == [2, 3, 1] and rounds.rotated([], 2) == []
    dtype = torch.float32
    torch_b, cpp_b = registry.get("matmul", "torch"), registry.get("matmul", "cpp")
    plan = runner.RunPlan("cpu", [runner.Case("matmul", {"M": m, "N": 2, "K": 2}, dtype, [torch_b, cpp_b])
                               for m in (1, 7)])  # fmt: skip
    pending = {
        rounds.benchmark_key("matmul", {"M": m, "N": 2, "K": 2}, "fp32", b)
        for m in (1, 7)
        for b in ("torch", "cpp")
    }
    first = rounds._cases_json(plan, pending, 0)
    second = rounds._cases_json(plan, pending, 1)
    assert [c["shape"]["M"] for c in first] == [1, 7] and first[0]["backends"] == ["torch", "cpp"]
    assert [c["shape"]["M"] for c in second] == [7, 1] and second[0]["backends"] == ["cpp", "torch"]


def test_an_interrupted_run_keeps_what_it_measured(monkeypatch):
    real = rounds.InProcess.round
    calls = {"n": 0}

    def interrupt_second(self, request):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, request)

    monkeypatch.setattr(rounds.InProcess, "round", interrupt_second)
    kept = []
    with pytest.raises(KeyboardInterrupt):
        plan = runner.plan_run(["matmul"], {"matmul": [{"M": 5, "N": 3, "K": 7}]}, None, "cpu", ["torch"])
        rounds.run(plan, rounds.RoundPlan(rounds=3, in_process=True), on_result=kept.append)
    (r,) = kept
    assert r.extra["sampling"]["stop"] == "interrupted" and len(r.extra["sampling"]["round_sizes"]) == 1


def test_precision_of_rounds():
    assert precision.relative_half_width([1.0]) == math.inf
    width = precision.relative_half_width([1.0, 1.02, 0.98, 1.01])
    assert 0.01 < width < 0.05
    needed = precision.rounds_needed([1.0, 1.02, 0.98, 1.01], width / 2)
    assert needed is not None and needed > 4
    with pytest.raises(ValueError, match="round sizes add up to 3"):
        precision.round_medians([1.0, 2.0], [1, 2])


def test_round_plan_refuses_bad_settings():
    for kwargs, message in (({"rounds": 0}, "rounds must be at least 1"), ({"precision": float("nan")}, "precision"),
                            ({"min_rounds": 5, "max_rounds": 3}, "min_rounds <= max_rounds")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            rounds.RoundPlan(**kwargs)


def test_run_refuses_a_bad_precision_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--precision", "nan"])
    assert exit_info.value.code == 2
    assert "precision 'nan' is not a finite number" in capsys.readouterr().err


def test_a_worker_child_that_dies_or_errs_is_named():
    with Zygote(label="test side") as zygote:
        child = zygote.fork()
        with pytest.raises(WorkerError, match="test side worker: bogus: AttributeError"):
            child.request({"cmd": "bogus"}, timeout_s=60)
        os.kill(child.pid, signal.SIGKILL)
        with pytest.raises(WorkerError, match=f"test side worker {child.pid} (died|is gone)"):
            child.request({"cmd": "prepare", "device": "cpu", "cases": [], "seed": 0}, timeout_s=60)
        child.close()
        fresh = zygote.fork()  # the parent goes on forking
        assert fresh.request({"cmd": "prepare", "device": "cpu", "cases": [], "seed": 0}, 120) == {
            "benchmarks": []
        }
        fresh.close()


FORKED_ADDRESSES = """
import json, os, sys
import torch
from zhisuan.bench.harness import worker

worker.missing_uses()  # as the worker parent does: import what every child uses, then fork


def addresses(before_allocating):
    found = []
    for _ in range(4):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            held = before_allocating()
            os.write(write, str(torch.empty(64 * 1024).data_ptr()).encode())
            os._exit(0)
        os.close(write)
        found.append(int(os.read(read, 64)))
        os.close(read)
        os.waitpid(pid, 0)
    return found


print(json.dumps({"plain": addresses(lambda: None), "shifted": addresses(worker._shift_heap)}))
"""


def test_children_of_one_worker_parent_put_their_buffers_at_different_addresses():
    """Where a 256 KiB tensor lands in four children forked from a fresh process that imported what
    the worker parent imports. Fresh, as the worker parent is: in a long-lived process whose heap
    has a hole that fits the tensor (this test session), every child puts it in that hole, blocks or not."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", FORKED_ADDRESSES], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert len(set(found["plain"])) == 1  # what a fork inherits
    assert len(set(found["shifted"])) == 4
