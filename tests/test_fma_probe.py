"""The FMA-throughput probe (zhisuan.kernels.probe.fma_peak over zhisuan.kernels._C.fma_probe)."""

from __future__ import annotations

import pytest

from zhisuan.kernels._ext import cpu_ext, cpu_ext_missing
from zhisuan.kernels.probe import fma_peak

pytestmark = pytest.mark.skipif(cpu_ext_missing() is not None, reason=str(cpu_ext_missing()))

ISAS = {"avx512", "avx2", "portable"}
# Per core, per second: above any CPU of the last 20 years, below 10x today's fastest core
# (about 32 fp32 FMAs of 2 FLOPs per cycle at 5 GHz, i.e. 320 GFLOP/s).
PLAUSIBLE_PER_CORE = (5e8, 3.2e12)


def plausible(result: dict) -> bool:
    per_core = result["flops_per_s"] / result["threads"]
    return PLAUSIBLE_PER_CORE[0] < per_core < PLAUSIBLE_PER_CORE[1]


def test_fp32_peak_on_all_cores_is_plausible():
    r = fma_peak("fp32", seconds=0.05)
    assert r["isa"] in ISAS and r["dtype"] == "fp32"
    assert r["threads"] == cpu_ext().gemm_threads()  # OpenMP's default: every core
    assert plausible(r), r
    assert 0 < r["cpu_share"] <= 1
    assert 0 < r["wall_flops_per_s"] <= r["flops_per_s"] * 1.05


def test_fp64_peak_is_at_most_the_fp32_peak():
    fp32 = fma_peak("fp32", threads=1, seconds=0.05)
    fp64 = fma_peak("fp64", threads=1, seconds=0.05)
    assert fp64["threads"] == fp32["threads"] == 1
    assert plausible(fp64), fp64
    # SIMD lanes hold half as many doubles; allow 25 % of measuring noise.
    assert fp64["flops_per_s"] < 1.25 * fp32["flops_per_s"]


def test_result_is_cached_per_process():
    first = fma_peak("fp32", threads=1, seconds=0.05)
    again = fma_peak("fp32", threads=1, seconds=0.05)
    assert first == again
    again["flops_per_s"] = 0  # the cache hands out copies
    assert fma_peak("fp32", threads=1, seconds=0.05)["flops_per_s"] > 0


def test_fresh_measures_again_and_leaves_the_cache_alone(monkeypatch):
    cached = fma_peak("fp32", threads=1, seconds=0.05)
    calls = []
    real = cpu_ext().fma_probe

    def counting_probe(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(cpu_ext(), "fma_probe", counting_probe)
    fresh = fma_peak("fp32", threads=1, seconds=0.05, fresh=True)
    assert len(calls) == 1 and calls[0]["threads"] == 1
    assert plausible(fresh), fresh
    assert fma_peak("fp32", threads=1, seconds=0.05) == cached and len(calls) == 1


@pytest.mark.parametrize("isa", sorted(ISAS))
def test_each_isa_the_cpu_runs(isa):
    if isa not in cpu_ext().isas():
        with pytest.raises(ValueError, match="cannot run"):
            cpu_ext().fma_probe(dtype="fp32", threads=1, seconds=0.02, isa=isa, windows=1)
        return
    r = cpu_ext().fma_probe(dtype="fp64", threads=1, seconds=0.02, isa=isa, windows=2)
    assert r["isa"] == isa and plausible(r), r


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"dtype": "fp16"}, "dtype must be one of fp32, fp64, got 'fp16'"),
        ({"threads": 0}, "threads must be a positive int"),
        ({"seconds": 0}, "seconds must be in"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fma_peak(**kwargs)


def test_unknown_isa_is_named():
    with pytest.raises(ValueError, match="unknown ISA 'neon'"):
        cpu_ext().fma_probe(dtype="fp32", threads=1, seconds=0.01, isa="neon", windows=1)
