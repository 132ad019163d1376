import pytest
import torch

from zhisuan import bench
from zhisuan.bench.core import flops
from zhisuan.bench.harness import runner
from zhisuan.kernels import registry


def test_run_checks_then_times_every_backend(tmp_path):
    path = tmp_path / "out.jsonl"
    results = bench.run("matmul", backends=["torch"], shapes=["7x97x1025"], iters=3, json_path=str(path))
    (r,) = results
    assert r.status == "ok" and r.check["passed"] and len(r.samples_s) == 3
    assert r.check["max_abs_err"] <= r.check["tolerance"]
    assert r.flops == 2 * 7 * 97 * 1025 and r.flops_per_s > 0 and r.pct_peak > 0
    assert r.env["torch"] == torch.__version__
    assert bench.read_results(path)[0].median_s == r.median_s


def test_a_wrong_backend_fails_its_check_and_is_not_timed():
    registry.register("matmul", "test-wrong", devices=("cpu",), dtypes=(torch.float32,))(
        lambda a, b: (a @ b) * 1.001
    )
    try:
        (r,) = bench.run("matmul", backends=["test-wrong"], shapes=["33x17x9"], iters=3)
    finally:
        registry.unregister("matmul", "test-wrong")
    assert r.status == "check-failed" and not r.check["passed"]
    assert r.samples_s == [] and r.flops_per_s is None


def test_a_crashing_backend_is_an_error_result_and_the_run_goes_on():
    def boom(a, b):
        raise RuntimeError("kernel exploded")

    registry.register("matmul", "test-boom", devices=("cpu",), dtypes=(torch.float32,))(boom)
    try:
        results = bench.run("matmul", backends=["test-boom", "torch"], shapes=["8"], iters=2)
    finally:
        registry.unregister("matmul", "test-boom")
    assert [r.status for r in results] == ["error", "ok"]
    assert "kernel exploded" in results[0].error


def test_plan_lists_unavailable_backends_with_reasons():
    plan = runner.plan_run(
        ["matmul"], {"matmul": [{"M": 2, "N": 2, "K": 2}]}, ["fp32"], "cpu", ["torch", "nope"]
    )
    assert plan.total == 1
    assert any("no matmul backend named 'nope'" in reason for _, reason in plan.skipped)


def test_a_suite_without_an_op_plans_no_skips_for_it(capsys):
    from zhisuan.bench.cli import main

    shapes = runner.shapes_for(["matmul", "attention"], "cpu", "square")
    assert shapes["attention"] == [] and shapes["matmul"]
    plan = runner.plan_run(["matmul", "attention"], shapes, None, "cpu")
    assert plan.without_shapes == ["attention"]
    assert plan.skipped and not any(what.startswith("attention") for what, _ in plan.skipped)
    assert main(["run", "attention", "--suite", "square"]) == 2
    err = capsys.readouterr().err
    assert "nothing to run (suite square has no attention shapes for cpu)" in err and "skipped" not in err


def test_attention_case_with_gqa_and_causal_offsets():
    results = bench.run("attention", backends=["torch"], shapes=["1x4x2x17x33x80"], iters=2)
    assert len(results) == 2 and all(r.status == "ok" for r in results)
    assert {r.shape["causal"] for r in results} == {False, True}


def test_measure_any_callable():
    a = torch.randn(64, 64)
    r = bench.measure(lambda: a @ a, flops=2 * 64**3, dtype="fp32", iters=5)
    assert len(r.samples_s) == 5 and r.flops_per_s > 0 and r.pct_peak is not None


def test_bad_shape_text():
    with pytest.raises(ValueError, match="expected MxNxK"):
        runner.shapes_for(["matmul"], "cpu", None, ["12xx3"])
    with pytest.raises(ValueError, match="expected BxHxSxD"):
        runner.shapes_for(["attention"], "cpu", None, ["1x2x3"])


def test_attention_forward_backward_checks_gradients_against_float64():
    results = bench.run(
        "attention-train", backends=["torch"], shapes=["1x4x2x9x17x16", "1x2x2x7x3x8"], iters=2
    )
    assert len(results) == 4 and all(r.status == "ok" for r in results)
    assert all(r.flops == 3.5 * flops.attention_flops(
        1, r.shape["heads"], r.shape["seq_q"], r.shape["seq_k"], r.shape["head_dim"], r.shape["causal"]) for r in results)  # fmt: skip


def test_attention_train_skips_backends_without_backward():
    registry.register("attention", "test-fwd-only", devices=("cpu",), dtypes=(torch.float32,))(
        lambda q, k, v, causal, scale: q
    )
    try:
        plan = runner.plan_run(
            ["attention-train"],
            {
                "attention-train": [
                    {
                        "batch": 1,
                        "heads": 1,
                        "heads_kv": 1,
                        "seq_q": 7,
                        "seq_k": 7,
                        "head_dim": 8,
                        "causal": False,
                    }
                ]
            },  # fmt: skip
            ["fp32"],
            "cpu",
            ["test-fwd-only"],
        )
    finally:
        registry.unregister("attention", "test-fwd-only")
    assert (
        "attention-train/test-fwd-only fp32",
        "test-fwd-only attention has no backward pass",
    ) in plan.skipped


def test_tolerance_follows_the_backends_math_format():
    from zhisuan.bench.workloads.base import tolerance

    reference = torch.randn(97, 7, dtype=torch.float64) * 3
    scale = float(reference.abs().max())
    fp32_floor = tolerance(None, reference, torch.float32)
    assert fp32_floor == pytest.approx(4 * 2.0**-23 * scale)
    # fp32 inputs multiplied as tf32 (Triton on tensor cores): the floor is tf32's epsilon, 2^-10.
    assert tolerance(None, reference, torch.float32, "tf32") == pytest.approx(4 * 2.0**-10 * scale)
    assert tolerance(1.0, reference, torch.float32, "tf32") == 4.0  # k x the baseline's error still rules


def test_interleaved_run_checks_each_backend_then_times_them_in_turn():
    registry.register("matmul", "test-wrong", devices=("cpu",), dtypes=(torch.float32,))(
        lambda a, b: (a @ b) * 1.001
    )
    registry.register("matmul", "test-right", devices=("cpu",), dtypes=(torch.float32,))(lambda a, b: a @ b)
    try:
        results = bench.run(
            "matmul",
            backends=["test-right", "test-wrong", "torch"],
            shapes=["97x7x33"],
            iters=4,
            interleave=True,
        )
    finally:
        registry.unregister("matmul", "test-wrong")
        registry.unregister("matmul", "test-right")
    by_name = {r.backend: r for r in results}
    assert by_name["test-wrong"].status == "check-failed" and by_name["test-wrong"].samples_s == []
    for name, other in (("test-right", "torch"), ("torch", "test-right")):
        r = by_name[name]
        assert r.status == "ok" and r.check["passed"] and len(r.samples_s) == 4 and r.flops_per_s > 0
        assert r.extra["interleaved_with"] == [other]


# ---- the one check-then-time path (zhisuan.bench.harness.checktime) -------------------------------


def new_result():
    from zhisuan.bench.core.results import Result

    return Result(kind="kernel", op="t", backend="b", shape={}, dtype="fp32", device="cpu", device_name="cpu")


def test_checktime_times_only_what_passed_and_names_the_error():
    from zhisuan.bench.core import chips, timing
    from zhisuan.bench.harness import checktime

    reference = torch.rand(97, 7, dtype=torch.float64) + 1
    sampling = checktime.Sampling(chips.detect("cpu"), timing.TimingPlan(iters=3), flush=False)
    relative = checktime.Check(reference, tolerance=1e-6, rule="relative", reference_kind="numpy",
                               error=lambda out, ref: float(((out - ref).abs() / ref).max()),
                               error_name="max relative error")  # fmt: skip
    good, wrong, nan, boom = new_result(), new_result(), new_result(), new_result()
    assert checktime.check_then_time(good, lambda: reference.float(), relative, sampling, "fp32")
    assert good.status == "ok" and good.check["passed"] and len(good.samples_s) == 3
    assert good.check["reference"] == "numpy" and good.check["rule"] == "relative"
    assert not checktime.check_then_time(wrong, lambda: reference * 1.001, relative, sampling)
    assert wrong.status == "check-failed" and wrong.error.startswith("max relative error 0.001")
    assert wrong.samples_s == [] and wrong.median_s is None
    assert not checktime.check_then_time(nan, lambda: reference * float("nan"), relative, sampling)
    assert nan.status == "check-failed"

    def explode():
        raise RuntimeError("kernel exploded")

    assert not checktime.check_then_time(boom, explode, relative, sampling)
    assert boom.status == "error" and "kernel exploded" in boom.error and boom.check == {}


def test_validate_and_the_runner_share_the_path(monkeypatch):
    from zhisuan.bench.core import chips
    from zhisuan.bench.harness import checktime
    from zhisuan.bench.validate import attention
    from zhisuan.bench.validate import thresholds as th
    from zhisuan.bench.validate.context import CheckContext
    from zhisuan.bench.validate.levels import TEST_SIZES_ENV, plan_for

    filled = []
    real_fill = checktime.fill
    monkeypatch.setattr(
        checktime, "fill", lambda result, *a, **k: (filled.append(result.kind), real_fill(result, *a, **k))
    )
    bench.run("matmul", backends=["torch"], shapes=["7"], iters=2)
    monkeypatch.setenv(TEST_SIZES_ENV, "tiny")
    ctx = CheckContext(device=chips.detect("cpu"), plan=plan_for("quick", "cpu"), thresholds=th.load(), run_id="t",
                       env={})  # fmt: skip
    attention.run(ctx)
    assert "kernel" in filled and "validate" in filled


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2, torch.bfloat16, torch.float32])
def test_negating_an_input_is_exact_in_every_dtype_fp8_included(dtype):
    # fp8 has no neg kernel on CUDA: the runner flips its sign bit instead (base.negate_).
    from zhisuan.bench.workloads.base import negate_

    x = (torch.rand(1025) * 2 - 1).to(dtype)
    want = (-x.float()).to(dtype)
    negate_(x)
    assert torch.equal(x.float(), want.float())
