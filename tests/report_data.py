"""Synthetic results of every kind for the report's tests: kernel runs, collective sweeps and a
cluster validation (stragglers, a FAIL, a burn-in timeline), with fixed dates and environments."""

from __future__ import annotations

import random

from zhisuan.bench.core.result_files import ResultWriter
from zhisuan.bench.core.results import Result

T0 = 1_790_000_000.0  # 2026-09-21 UTC: a fixed date the report must print
CPU = "AMD EPYC 9R14 96-Core Processor"
H100 = "NVIDIA H100 80GB HBM3"
ENV_CPU = {
    "host": "ci-box",
    "os": "Linux-6.1-x86_64",
    "python": "3.11.7",
    "torch": "2.13.0+cpu",
    "triton": "3.9.0",
    "numpy": "2.4.6",
    "zhisuan": "0.1.0",
    "git_sha": "abc1234",
    "cpu": CPU,
    "cpu_cores": 2,
    "torch_threads": 2,
    "cuda": None,
    "gpus": [],
    "kernels_C_build": {"compiler": "12.2.0", "openmp": 201511},
}
ENV_GPU = {
    **ENV_CPU,
    "host": "gpu-node",
    "torch": "2.13.0+cu128",
    "cuda": "12.8",
    "gpus": [H100],
    "cuda_driver": "570.86.15",
}
FAILED_MEDIAN_S = 0.0424242  # a check-failed result's time: the report must never print it
ERRORED_RATE = 7.77e11  # an errored result's (bogus) rate: never printed either


def _kernel(rng, op, backend, n, *, device_name=CPU, device="cpu", dtype="fp32", peak=166.15e9, **fields):
    if op == "matmul":
        shape, flops, nbytes = {"M": n, "N": n, "K": n}, 2.0 * n**3, 3.0 * 4 * n * n
    else:
        shape = {
            "batch": 1,
            "heads": 8,
            "heads_kv": 8,
            "seq_q": n,
            "seq_k": n,
            "head_dim": 64,
            "causal": False,
        }
        flops, nbytes = 4.0 * 8 * n * n * 64, 4.0 * 4 * 8 * n * 64
    rate = min(peak * 0.8, flops / 2e-5) * rng.uniform(0.4, 0.9)
    median = flops / rate
    r = Result(
        kind="kernel",
        op=op,
        backend=backend,
        shape=shape,
        dtype=dtype,
        device=device,
        device_name=device_name,
        samples_s=[median * rng.uniform(0.97, 1.05) for _ in range(5)],
        median_s=median,
        iqr_s=median * 0.03,
        cv=rng.uniform(0.01, 0.05),
        flops=flops,
        bytes=nbytes,
        flops_per_s=rate,
        bytes_per_s=nbytes / median,
        peak_flops=peak,
        peak_status="derived" if device == "cpu" else "datasheet",
        pct_peak=100 * rate / peak,
        check={"max_abs_err": rng.uniform(1e-7, 1e-6), "tolerance": 1e-5, "passed": True},
        env=ENV_CPU if device == "cpu" else ENV_GPU,
        run_id="20260921-run-cpu" if device == "cpu" else "20260921-run-gpu",
        timestamp=T0 + rng.uniform(0, 50),
    )
    if device == "cpu":
        r.measured_peak_flops = 232.6e9
        r.pct_measured_peak = 100 * rate / r.measured_peak_flops
    else:
        r.peak_bandwidth = 3.35e12
        r.pct_peak_bandwidth = 100 * r.bytes_per_s / r.peak_bandwidth
    for key, value in fields.items():
        setattr(r, key, value)
    return r


def kernel_results(seed: int = 7) -> list[Result]:
    """CPU matmul/attention sweeps over two backends (sizes spanning decades), a check failure, a crash,
    an interpreted Triton result; and a GPU pair with a known bandwidth roof."""
    rng = random.Random(seed)
    out = [_kernel(rng, "matmul", b, n) for b in ("cpp", "torch") for n in (7, 97, 1025, 2048)]
    out += [_kernel(rng, "attention", b, n) for b in ("cpp", "torch") for n in (97, 1025)]
    out.append(
        _kernel(
            rng,
            "matmul",
            "naive",
            1025,
            status="check-failed",
            median_s=FAILED_MEDIAN_S,
            error="max abs error 0.31 exceeds tolerance 1e-05",
            check={"max_abs_err": 0.31, "tolerance": 1e-5, "passed": False},
        )
    )
    out.append(
        _kernel(
            rng,
            "matmul",
            "broken",
            97,
            status="error",
            error="RuntimeError: CUDA error: illegal address",
            flops_per_s=ERRORED_RATE,
            check={},
        )
    )
    out.append(_kernel(rng, "matmul", "triton", 97, interpreted=True, flops_per_s=None))
    out += [
        _kernel(rng, "matmul", b, 8192, device_name=H100, device="cuda:0", dtype="bf16", peak=989.4e12)
        for b in ("cublas", "triton")
    ]
    return out


def collective_results(seed: int = 11) -> list[Result]:
    """all_reduce fp32 over 2 ranks, gloo and shm, out-of-place and in-place, 8 B to 64 MiB; one wrong."""
    rng = random.Random(seed)
    out = []
    for backend, speed in (("gloo", 1.5e9), ("shm", 9e9)):
        for size in [8 * 8**i for i in range(8)] + [64 << 20]:
            for in_place in (False, True):
                time_s = 2e-6 * (30 if backend == "gloo" else 1) + size / speed * rng.uniform(0.9, 1.1)
                algbw = size / time_s
                wrong = 3 if (backend == "shm" and size == 4096 and in_place) else 0
                out.append(
                    Result(
                        kind="collective",
                        op="all_reduce",
                        backend=backend,
                        shape={"bytes": size, "count": max(size // 4, 1), "ranks": 2},
                        dtype="fp32",
                        device="cpu",
                        device_name=CPU,
                        status="ok" if wrong == 0 else "check-failed",
                        samples_s=[time_s] * 3,
                        median_s=time_s,
                        bytes=size,
                        bytes_per_s=algbw,
                        check={"wrong": wrong, "passed": wrong == 0},
                        extra={
                            "op": "sum",
                            "in_place": in_place,
                            "time_s": time_s,
                            "algbw": algbw,
                            "busbw": algbw,
                            "wrong": wrong,
                            "p50_s": time_s,
                            "p95_s": time_s * 1.2,
                            "max_s": time_s * 1.5,
                            "slowest_rank": 1,
                        },
                        env=ENV_CPU,
                        run_id="20260921-run-coll",
                        timestamp=T0 + 100,
                    )
                )
    return out


def check_record(
    op, title, verdict, value, unit, host, rank, *, dtype="fp32", threshold=None, reason="", **extra
):
    telemetry = {
        "sm_clock_mhz": 1980,
        "mem_clock_mhz": None,
        "temp_c": 61.0,
        "power_w": 655.0,
        "throttle": None,
        "ecc_corrected": 0,
        "ecc_uncorrected": 0,
        "source": "nvml",
        "unreadable": {"mem_clock_mhz": "NVML gives no memory clock in this container"},
    }
    reference = (threshold or {}).get("reference")
    ratio = value / reference if isinstance(value, float) and reference else None
    return Result(
        kind="validate",
        op=op,
        backend="zhisuan",
        shape={},
        dtype=dtype,
        device=f"cuda:{rank % 2}",
        device_name=H100,
        status="ok",
        extra={
            "check": title,
            "verdict": verdict,
            "value": value,
            "unit": unit,
            "threshold": threshold,
            "ratio": ratio,
            "reason": reason,
            "host": host,
            "rank": rank,
            "world": 4,
            "sizes": "real",
            "telemetry": telemetry,
            **extra,
        },
        env={**ENV_GPU, "host": host},
        run_id="20260921-validate",
        timestamp=T0 + 200 + abs(rank),
    )


MATMUL_RULE = {
    "pass": 0.75,
    "warn": 0.7,
    "basis": "fraction of datasheet bf16 989.4 TFLOP/s [datasheet]",
    "reference": 989.4,
    "compare": ">=",
    "source": "H100 bf16 GEMM reaches about 80% of the datasheet",
}
TRIAD_RULE = {
    "pass": 0.8,
    "warn": 0.6,
    "basis": "fraction of datasheet HBM3 3350 GB/s",
    "reference": 3350.0,
    "compare": ">=",
}
INTEGRITY_RULE = {
    "pass": 0.0,
    "warn": 0.0,
    "basis": "count of repeats differing in any bit from the first",
    "reference": None,
    "compare": "<=",
}
BURN_RULE = {
    "pass": 0.9,
    "warn": 0.85,
    "compare": ">=",
    "reference": 790.0,
    "basis": "fraction of the burst 790 TFLOP/s of this device",
}


def validate_results(seed: int = 5) -> list[Result]:
    """A 2-node, 4-GPU validation as `zhisuan validate` records it: a matmul straggler (WARN), an
    integrity FAIL, SKIPs without threshold, a fleet-wide record (rank -1), a burn-in timeline with
    throttling, and the summary record."""
    rng = random.Random(seed)
    ranks = [("node-a", 0), ("node-a", 1), ("node-b", 2), ("node-b", 3)]
    out = []
    for host, rank in ranks:
        value = 712.0 if rank == 2 else rng.uniform(780, 800)
        out.append(
            check_record(
                "matmul",
                "Matmul throughput",
                "WARN" if rank == 2 else "PASS",
                value,
                "TFLOP/s",
                host,
                rank,
                dtype="bf16",
                threshold=MATMUL_RULE,
                reason="best cublas at 8192^3",
            )
        )
        out.append(
            check_record(
                "stream-triad",
                "Memory bandwidth (triad)",
                "PASS",
                rng.uniform(2750, 2900),
                "GB/s",
                host,
                rank,
                dtype="fp32",
                threshold=TRIAD_RULE,
            )
        )
        mismatches = 2.0 if rank == 3 else 0.0
        out.append(
            check_record(
                "integrity",
                "Numerical integrity",
                "FAIL" if mismatches else "PASS",
                mismatches,
                "differing repeats",
                host,
                rank,
                threshold=INTEGRITY_RULE,
                reason="iteration 17 differs from iteration 0" if mismatches else "3 repeats identical",
            )
        )
        out.append(
            check_record(
                "h2d",
                "Host to device copy",
                "SKIP",
                None,
                "GB/s",
                host,
                rank,
                dtype="uint8",
                reason="pinned memory unavailable in this container",
            )
        )
        timeline = [
            {
                "t": 5.0 * i,
                "tflops": 790 - (25 if 6 <= i <= 8 else 0) + rng.uniform(-3, 3),
                "sm_clock_mhz": 1980 - (200 if 6 <= i <= 8 else 0),
                "temp_c": 55 + i * 1.1,
                "power_w": 690 + rng.uniform(-5, 5),
                "throttle": ["hw_thermal_slowdown"] if 6 <= i <= 8 else None,
            }
            for i in range(14)
        ]
        out.append(
            check_record(
                "burn-in",
                "Burn-in (sustained matmul)",
                "PASS",
                772.0,
                "TFLOP/s",
                host,
                rank,
                dtype="bf16",
                threshold=BURN_RULE,
                timeline=timeline,
            )
        )
    out.append(
        check_record(
            "integrity",
            "Numerical integrity across ranks",
            "PASS",
            0.0,
            "ranks",
            "node-a",
            -1,
            threshold={**INTEGRITY_RULE, "basis": "ranks whose product differs from the majority's"},
            reason="ranks [0, 1, 2, 3] computed identical bits",
        )
    )
    summary = Result(
        kind="validate",
        op="summary",
        backend="zhisuan",
        shape={},
        dtype="",
        device="cuda",
        device_name=H100,
        extra={
            "check": "Validation summary",
            "verdict": "FAIL",
            "level": "burn-in",
            "duration_s": 600.0,
            "interrupted": False,
            "margin_pct": 5.0,
            "counts": {"PASS": 15, "WARN": 1, "FAIL": 1, "SKIP": 4},
            "devices": [
                {
                    "host": h,
                    "rank": r,
                    "device": f"cuda:{r % 2}",
                    "device_name": H100,
                    "verdict": "FAIL" if r == 3 else "WARN" if r == 2 else "PASS",
                }
                for h, r in ranks
            ],
            "stragglers": [
                {
                    "check": "matmul bf16",
                    "host": "node-b",
                    "rank": 2,
                    "value": 712.0,
                    "median": 789.0,
                    "unit": "TFLOP/s",
                    "deficit_pct": 9.76,
                }
            ],
            "cluster": {
                "dtype": "bf16",
                "ranks": 4,
                "measured_ranks": 4,
                "achieved_pflops": 3.08,
                "nameplate_pflops": 3.958,
                "nameplate_reason": None,
                "nameplate_status": ["datasheet"],
                "pct_of_nameplate": 77.8,
            },
        },
        env={**ENV_GPU, "host": "node-a"},
        run_id="20260921-validate",
        timestamp=T0 + 900,
    )
    return out + [summary]


def write_results(path, results):
    with ResultWriter(path) as writer:
        for r in results:
            writer.write(r)
    return path


def odd_kind_result() -> Result:
    return Result(
        kind="odd", op="x", backend="y", shape={"n": 1}, dtype="fp32", device="cpu", device_name=CPU
    )
