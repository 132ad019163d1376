"""zhisuan validate, piece by piece: thresholds, levels, error bounds, the cluster view, telemetry,
integrity helpers, the CPU STREAM kernels, and each check run on this CPU with tiny sizes (including
a corrupting and a flaky backend the checks must catch)."""

import math
import types

import numpy as np
import pytest
import torch

from zhisuan import kernels
from zhisuan.bench.core import chips
from zhisuan.bench.core.errors import UsageError
from zhisuan.bench.core.results import Result
from zhisuan.bench.validate import (
    attention,
    burnin,
    cluster,
    integrity,
    interconnect,
    matmul,
    stream,
    stream_cpu,
    telemetry,
)
from zhisuan.bench.validate import thresholds as th
from zhisuan.bench.validate.context import RECORD_KEYS, CheckContext
from zhisuan.bench.validate.levels import TEST_SIZES_ENV, parse_duration, plan_for, stream_array_bytes
from zhisuan.bench.validate.tolerance import attention_tolerance, matmul_tolerance
from zhisuan.bench.workloads.attention import reference_attention
from zhisuan.kernels import registry


@pytest.fixture
def ctx(monkeypatch):
    monkeypatch.setenv(TEST_SIZES_ENV, "tiny")
    return CheckContext(
        device=chips.detect("cpu"), plan=plan_for("quick", "cpu"), thresholds=th.load(), run_id="t", env={}
    )


def assert_contract(r: Result):
    assert r.kind == "validate"
    missing = RECORD_KEYS - r.extra.keys()
    assert not missing, f"{r.op}: extra lacks {missing}"
    assert r.extra["verdict"] in th.VERDICTS
    if r.extra["threshold"] is not None:
        assert {"pass", "warn", "basis"} <= r.extra["threshold"].keys()


# ---- thresholds -----------------------------------------------------------------------------------


def test_default_rules_resolve_most_specific_first():
    rules = th.load()
    h100 = rules.find("h100-sxm", "cuda", "matmul", "bf16")
    assert h100.pass_fraction == 0.75 and h100.basis == "datasheet"
    generic = rules.find("some-new-gpu", "cuda", "matmul", "bf16")
    assert generic.pass_fraction == 0.60 and "gpu" in generic.chips
    cpu = rules.find("cpu", "cpu", "stream-triad", "fp64")
    assert cpu.basis == "copy-ceiling" and cpu.pass_fraction == 0.60
    assert rules.find("cpu", "cpu", "attention", "fp32").pass_fraction == 0.40
    assert rules.find("cpu", "cpu", "matmul", "bf16") is None  # no CPU bf16 rule: unjudged, not guessed
    assert rules.find(None, "cuda", "burn-in", "bf16").basis == "burst"
    assert rules.margin_pct == 5.0


def test_judge_boundaries_and_nan():
    rule = th.Rule(("*",), ("x",), ("*",), 0.8, 0.6, "value", "s", 1.0, "GB/s")
    assert th.judge(0.8, rule) == "PASS"
    assert th.judge(0.79, rule) == "WARN"
    assert th.judge(0.6, rule) == "WARN"
    assert th.judge(0.59, rule) == "FAIL"
    assert th.judge(float("nan"), rule) == "FAIL"
    assert th.worst(["PASS", "SKIP", "WARN"]) == "WARN"
    assert th.worst(["PASS", "FAIL", "WARN"]) == "FAIL"
    assert th.worst([]) == "SKIP"


def test_user_file_overrides_defaults(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text(
        'straggler_margin_pct = 2.5\n[[rule]]\nchip = "cpu"\ncheck = "matmul"\ndtype = "fp32"\n'
        'pass = 0.9\nwarn = 0.1\nbasis = "measured-fma"\nsource = "site policy"\n'
    )
    rules = th.load(path)
    assert rules.margin_pct == 2.5
    assert rules.find("cpu", "cpu", "matmul", "fp32").source == "site policy"
    assert rules.find("cpu", "cpu", "matmul", "fp64").pass_fraction == 0.60  # default still there


@pytest.mark.parametrize(
    "body, message",
    [
        ('[[rule]]\nchip = "cpu"\ncheck = "matmul"\ndtype = "fp32"\npass = 0.5\nwarn = 0.1\nsource = "s"\n', "missing `basis`"),
        ('[[rule]]\nchip = "cpu"\ncheck = "m"\ndtype = "*"\npass = 0.5\nwarn = 0.1\nbasis = "vibes"\nsource = "s"\n', "basis 'vibes'"),
        ('[[rule]]\nchip = "cpu"\ncheck = "m"\ndtype = "*"\npass = 0.5\nwarn = 0.7\nbasis = "burst"\nsource = "s"\n', "warn <= pass"),
        ('[[rule]]\nchip = "cpu"\ncheck = "m"\ndtype = "*"\npass = 0.5\nwarn = 0.1\nbasis = "value"\nsource = "s"\n', "positive `reference`"),
        ('[[rule]]\nchip = 3\ncheck = "m"\ndtype = "*"\npass = 0.5\nwarn = 0.1\nbasis = "burst"\nsource = "s"\n', "`chip`"),
        ("this is = not toml [", "not valid TOML"),
    ],
)  # fmt: skip
def test_bad_threshold_files_name_the_file_and_rule(tmp_path, body, message):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(ValueError, match="bad.toml") as info:
        th.load(path)
    assert message in str(info.value)


def test_missing_threshold_file():
    with pytest.raises(UsageError, match="--thresholds .*: no such file"):
        th.load("/nonexistent/site.toml")


# ---- levels ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, seconds", [("90", 90.0), ("30s", 30.0), ("10m", 600.0), ("1.5h", 5400.0), ("250ms", 0.25)]
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "ten minutes", "10x", "-5s", "0"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="--duration"):
        parse_duration(text)


def test_plans_and_the_test_override(monkeypatch):
    monkeypatch.delenv(TEST_SIZES_ENV, raising=False)
    quick = plan_for("quick", "cpu")
    assert quick.sizes == "real" and quick.burn_in_s == 0 and max(quick.matmul_sizes) >= 1024
    assert plan_for("burn-in", "cuda").burn_in_s == 600.0
    assert plan_for("burn-in", "cpu", 42.0).burn_in_s == 42.0
    assert not plan_for("quick", "cuda").all_backends and plan_for("standard", "cuda").all_backends
    # STREAM arrays: 4x the cache, never below the floor.
    assert stream_array_bytes(quick, "cpu", 32 << 20) == 128 << 20
    assert stream_array_bytes(quick, "cpu", 1 << 20) == 64 << 20
    assert stream_array_bytes(plan_for("quick", "cuda"), "cuda", 50 << 20) == 1 << 30
    monkeypatch.setenv(TEST_SIZES_ENV, "tiny")
    tiny = plan_for("quick", "cpu")
    assert tiny.sizes == "test" and max(tiny.matmul_sizes) < 128
    monkeypatch.setenv(TEST_SIZES_ENV, "huge")
    with pytest.raises(ValueError, match="tiny"):
        plan_for("quick", "cpu")
    with pytest.raises(ValueError, match="--level"):
        plan_for("extreme", "cpu")


# ---- error bounds ---------------------------------------------------------------------------------


@pytest.mark.parametrize("m, n, k", [(1, 1, 1), (7, 97, 13), (97, 7, 1025), (64, 80, 1025)])
@pytest.mark.parametrize("backend", ["torch", "cpp"])
def test_matmul_bound_accepts_real_products_and_catches_a_bad_one(m, n, k, backend):
    if registry.get("matmul", backend).why_not("cpu", torch.float32):
        pytest.skip(registry.get("matmul", backend).why_not("cpu", torch.float32))
    a = torch.rand(m, k) * 2 - 1
    b = torch.rand(k, n) * 2 - 1
    reference = a.double() @ b.double()
    tol = matmul_tolerance(a, b, reference, "fp32", torch.float32)
    c = kernels.matmul(a, b, backend=backend)
    assert float((c.double() - reference).abs().max()) <= tol
    bad = c.clone()
    bad[m // 2, n // 2] += 1e-3 * max(1.0, float(reference.abs().max()))
    assert float((bad.double() - reference).abs().max()) > tol


def test_matmul_bound_scales_with_precision():
    a, b = torch.rand(64, 256) * 2 - 1, torch.rand(256, 64) * 2 - 1
    ref = a.double() @ b.double()
    assert matmul_tolerance(a, b, ref, "tf32", torch.float32) > 1000 * matmul_tolerance(
        a, b, ref, "fp32", torch.float32
    )
    assert matmul_tolerance(a.bfloat16(), b.bfloat16(), ref, "bf16", torch.bfloat16) > matmul_tolerance(
        a, b, ref, "fp32", torch.float32
    )


@pytest.mark.parametrize("seq_q, seq_k, d", [(1, 1, 64), (97, 97, 80), (7, 1025, 32)])
def test_attention_bound_accepts_real_outputs_and_catches_a_bad_one(seq_q, seq_k, d):
    q = torch.rand(1, 2, seq_q, d) * 2 - 1
    k, v = (torch.rand(1, 2, seq_k, d) * 2 - 1 for _ in range(2))
    scale = 1 / math.sqrt(d)
    reference = reference_attention(q, k, v, False, scale)
    tol = attention_tolerance(q, k, v, reference, scale)
    for name in ("torch", "cpp"):
        if registry.get("attention", name).why_not("cpu", torch.float32):
            continue
        out = kernels.attention(q, k, v, backend=name)
        assert float((out.double() - reference).abs().max()) <= tol, name
    bad = reference.float().clone()
    bad[0, 1, seq_q - 1, d // 2] += 1e-3
    assert float((bad.double() - reference).abs().max()) > tol


# ---- the cluster view -----------------------------------------------------------------------------


def record(op, rank, value, *, dtype="fp32", verdict="PASS", name="cpu-x", host="h", digest=None, flops=None):
    r = Result(kind="validate", op=op, backend="torch", shape={}, dtype=dtype, device="cpu", device_name=name)
    r.extra.update(verdict=verdict, value=value, unit="GFLOP/s", rank=rank, host=host, world=4)
    if digest:
        r.extra.update(digest=digest, config=f"{name} | torch | fp32")
    r.flops_per_s = flops
    return r


def test_stragglers_below_the_median_by_more_than_the_margin():
    records = [record("matmul", r, v) for r, v in enumerate([100.0, 101.0, 99.0, 90.0])]
    records += [record("stream-triad", r, v, dtype="fp64") for r, v in enumerate([10.0, 10.0, 9.6, 10.2])]
    records += [record("matmul", 9, 50.0, name="another chip")]  # alone of its kind: no median
    records += [record("all_reduce", r, v) for r, v in enumerate([1.0, 1.0, 0.1, 1.0])]  # shared figure
    records += [record("attention", r, None, verdict="SKIP") for r in range(4)]
    found = cluster.stragglers(records, 5.0)
    assert [(s["check"], s["rank"]) for s in found] == [("matmul fp32", 3)]
    assert found[0]["deficit_pct"] == pytest.approx(100 * (99.5 - 90) / 99.5)
    assert [s["rank"] for s in cluster.stragglers(records, 3.0)] == [3, 2]  # triad rank 2: 4% below


def test_cross_rank_integrity_names_the_odd_rank():
    records = [record("integrity", r, 0.0, digest="aa" if r != 2 else "bb") for r in range(4)]
    (out,) = cluster.cross_rank_integrity(records, None)
    assert out.extra["verdict"] == "FAIL" and "rank 2" in out.extra["reason"]
    assert out.extra["value"] == 1.0 and out.extra["rank"] == -1
    same = [record("integrity", r, 0.0, digest="aa") for r in range(2)]
    assert cluster.cross_rank_integrity(same, None)[0].extra["verdict"] == "PASS"


def member(rank, host, kind="cpu", peak=0.2):
    return cluster.Member(
        rank, host, kind, "chip", kind, peak, "derived" if peak else None, None if peak else "unknown"
    )


def test_cluster_flops_counts_a_cpu_host_once_and_gpus_each():
    records = [record("matmul", r, 1.0, flops=50e9) for r in range(4)]
    cpus = [member(0, "a"), member(1, "a"), member(2, "b"), member(3, "b")]
    info = cluster.cluster_flops(records, cpus)
    assert info["achieved_pflops"] == pytest.approx(200e9 / 1e15)
    assert info["nameplate_pflops"] == pytest.approx(0.4 / 1e3)
    gpus = [member(r, "a", "cuda", 989.0) for r in range(4)]
    gpu_records = [record("matmul", r, 1.0, dtype="bf16", flops=700e12) for r in range(4)]
    info = cluster.cluster_flops(gpu_records, gpus)
    assert info["nameplate_pflops"] == pytest.approx(4 * 0.989) and info["pct_of_nameplate"] == pytest.approx(
        100 * 2.8 / 3.956
    )
    info = cluster.cluster_flops(gpu_records, gpus[:3] + [member(3, "a", "cuda", None)])
    assert info["nameplate_pflops"] is None and "rank 3" in info["nameplate_reason"]


# ---- telemetry ------------------------------------------------------------------------------------


def test_cpu_telemetry_reads_or_says_why():
    reading = telemetry.CpuTelemetry().read()
    for name in telemetry.FIELDS:
        assert reading[name] is not None or name in reading["unreadable"], name
    assert reading["source"]


def test_gpu_telemetry_without_a_gpu_is_unreadable_with_reasons():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    reading = telemetry.GpuTelemetry(0).read()
    assert all(reading[name] is None for name in telemetry.FIELDS)
    assert set(reading["unreadable"]) == set(telemetry.FIELDS) and all(reading["unreadable"].values())


def test_throttle_reason_names():
    nvml = types.SimpleNamespace(
        nvmlClocksThrottleReasonGpuIdle=1, nvmlClocksThrottleReasonHwThermalSlowdown=64
    )
    assert telemetry.throttle_reasons(nvml, 0) == []
    assert telemetry.throttle_reasons(nvml, 65) == ["idle", "hardware thermal slowdown"]


# ---- integrity and burn-in helpers ----------------------------------------------------------------


def test_bitwise_comparison_sees_one_flipped_bit_and_signed_zero():
    a = torch.rand(7, 5)
    b = a.clone()
    b.view(torch.int32)[3, 2] ^= 1
    assert not torch.equal(integrity.bits(a), integrity.bits(b))
    assert "1 element(s) differ, first at [3, 2]" in integrity.first_difference(a, b)
    zero = torch.zeros(1, 1)
    assert not torch.equal(integrity.bits(zero), integrity.bits(-zero))


def test_burst_and_sustained():
    assert burnin.burst_and_sustained([10.0, 12.0, 11.0, 9.0, 8.0, 8.0]) == (12.0, 8.0)
    assert burnin.burst_and_sustained([5.0]) == (5.0, 5.0)
    assert (
        burnin.window_seconds(10) == 0.5
        and burnin.window_seconds(3600) == 5.0
        and burnin.window_seconds(1) == 0.25
    )


# ---- STREAM on the CPU ----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 7, 1025])
def test_cpu_stream_kernels_match_numpy(n):
    arrays = stream_cpu.CpuStream(n)
    assert np.all(arrays.a >= 1.0)  # never zeros
    for name in ("copy", "scale", "add", "triad"):
        target, expected = arrays.expected(name)
        arrays.kernel(name)()
        check = stream.against(name, expected, "numpy")
        assert check.error(target, expected) <= check.tolerance, name
        wrong = target.copy()
        wrong[n // 2] *= 1 + 2**-40
        assert check.error(wrong, expected) > check.tolerance, name
    with pytest.raises(ValueError, match="at least 1"):
        stream_cpu.CpuStream(0)


@pytest.mark.parametrize("n, threads", [(1, 4), (7, 3), (1025, 2)])
def test_all_core_copy_ceiling_copies_every_slice(ctx, monkeypatch, n, threads):
    copied = []
    real_copyto = np.copyto
    monkeypatch.setattr(
        stream.np, "copyto", lambda dst, src: (copied.append(src.size), real_copyto(dst, src))
    )
    source = np.random.default_rng(n).random(n) + 1.0
    assert stream.copy_ceiling(ctx, source, threads) > 0
    assert sum(copied[: min(n, threads)]) == n  # the first copy: one slice per thread, together the array


# ---- the checks on this CPU (tiny sizes) ----------------------------------------------------------


def test_matmul_check_records(ctx):
    records = matmul.run(ctx)
    assert [r.dtype for r in records] == ["fp32", "fp64"]
    for r in records:
        assert_contract(r)
        assert r.status == "ok" and r.check["passed"] and r.flops_per_s > 0
        assert r.extra["unit"] == "GFLOP/s" and r.extra["threshold"]["basis"].startswith(
            "fraction of measured"
        )
        assert {row["shape"]["M"] for row in r.extra["sweep"]} == set(ctx.plan.matmul_sizes)
        assert r.extra["sizes"] == "test"


def test_matmul_check_fails_a_corrupting_backend(ctx):
    @kernels.register("matmul", "validate-corrupt", devices=("cpu",), dtypes=(torch.float32,))
    def corrupt(a, b):
        c = torch.matmul(a, b)
        c[c.shape[0] // 2, 0] += 0.5
        return c

    try:
        fp32 = matmul.measure_dtype(ctx, "fp32")
    finally:
        registry.unregister("matmul", "validate-corrupt")
    assert fp32.extra["verdict"] == "FAIL" and "validate-corrupt" in fp32.extra["reason"]
    bad_rows = [row for row in fp32.extra["sweep"] if row["backend"] == "validate-corrupt"]
    assert bad_rows and not any(row["passed"] for row in bad_rows)


def test_integrity_check_catches_a_flaky_backend(ctx):
    calls = {"n": 0}

    @kernels.register("matmul", "validate-flaky", devices=("cpu",), dtypes=(torch.float32,))
    def flaky(a, b):
        calls["n"] += 1
        c = torch.matmul(a, b)
        if calls["n"] == 3:  # the second repeat: one low bit flipped, far inside any tolerance
            c.view(torch.int32)[1, 1] ^= 1
        return c

    try:
        records = integrity.run(ctx)
    finally:
        registry.unregister("matmul", "validate-flaky")
    by_backend = {r.backend: r for r in records}
    bad = by_backend["validate-flaky"]
    assert_contract(bad)
    assert bad.extra["verdict"] == "FAIL" and bad.extra["value"] == 1.0
    assert "iteration 2" in bad.extra["reason"] and "[1, 1]" in bad.extra["reason"]
    assert by_backend["torch"].extra["verdict"] == "PASS" and len(by_backend["torch"].extra["digest"]) == 32


def test_stream_attention_and_interconnect_checks(ctx):
    streams = stream.run(ctx)
    assert [r.op for r in streams] == ["stream-copy", "stream-scale", "stream-add", "stream-triad"]
    for r in streams:
        assert_contract(r)
        assert r.check["passed"] and r.bytes_per_s > 0 and r.extra["ceiling_gbps"] > 0
        assert r.extra["past_cache"] is False  # test sizes say so
    (att,) = attention.run(ctx)
    assert_contract(att)
    assert att.status == "ok" and att.check["passed"] and att.dtype == "fp32"
    ar, h2d, d2h = interconnect.run(ctx)
    assert ar.extra["verdict"] == "SKIP" and "one rank" in ar.extra["reason"]
    assert h2d.extra["verdict"] == d2h.extra["verdict"] == "SKIP"


def test_judge_without_a_rule_or_basis_is_a_warn(ctx):
    r = ctx.record("matmul", "t", dtype="bf16")
    ctx.judge(r, value=5e9, unit="GFLOP/s", rule=None, basis=None, basis_text="", scale=1e9)
    assert r.extra["verdict"] == "WARN" and r.extra["value"] == 5.0 and "no threshold" in r.extra["reason"]
    rule = ctx.rule("matmul", "fp32")
    ctx.judge(r, value=5e9, unit="GFLOP/s", rule=rule, basis=None, basis_text="no peak known", scale=1e9)
    assert r.extra["verdict"] == "WARN" and "cannot judge: no peak known" in r.extra["reason"]
    ctx.judge(r, value=5e9, unit="GFLOP/s", rule=rule, basis=5e9, basis_text="b", scale=1e9)
    assert (
        r.extra["verdict"] == "PASS" and r.extra["threshold"]["reference"] == 5.0 and r.extra["ratio"] == 1.0
    )
