"""The GPU issue's targets, judged from the benchmark's results (ours against the vendor's, same run)."""

from __future__ import annotations

import math
import re
import statistics

from zhisuan.bench.core.results import Result, short_shape


def geomean(values: list[float]) -> float | None:
    return math.exp(statistics.fmean(math.log(v) for v in values)) if values else None


def speedups(results: list[Result], op: str, ours: str, theirs: str, dtype: str = "bf16") -> dict[str, float]:
    """Per shape label: their time / our time (> 1: ours is faster), for shapes both ran."""
    times: dict[tuple[str, str], float] = {}
    for r in results:
        if r.op == op and r.dtype == dtype and r.status == "ok" and r.median_s:
            times[(r.backend, short_shape(op, r.shape))] = r.median_s
    return {
        shape: times[(theirs, shape)] / t
        for (backend, shape), t in times.items()
        if backend == ours and (theirs, shape) in times
    }


def _seq(label: str) -> int:
    match = re.search(r"\bs(\d+)", label)
    return int(match[1]) if match else 0


def _judged(value: float | None, target: float, unit: str = "×") -> str:
    if value is None:
        return "not measured"
    return f"{value:.3g}{unit} ({'met' if value >= target else 'MISSED'}; target {target}{unit})"


def target_lines(results: list[Result]) -> list[str]:
    named = {
        s: v for s, v in speedups(results, "matmul", "triton", "torch").items() if " " in s
    }  # LLM shapes
    at_8192 = [r.flops_per_s for r in results if r.op == "matmul" and r.backend == "triton" and r.dtype == "bf16"
               and r.status == "ok" and r.flops_per_s and (r.shape.get("M"), r.shape.get("N"), r.shape.get("K")) == (8192,) * 3]  # fmt: skip
    forward = {
        s: v for s, v in speedups(results, "attention", "triton", "sdpa-flash").items() if _seq(s) >= 4096
    }
    train = speedups(results, "attention-train", "triton", "sdpa-flash")
    cuda_cpp = speedups(results, "matmul", "cpp", "torch").get("4096x4096x4096")
    return [
        f"- Triton matmul, geometric mean over the LLM shapes vs cuBLAS: {_judged(geomean(list(named.values())), 0.95)}",
        f"- Triton matmul at 8192³ bf16: {_judged(max(at_8192) / 1e12 if at_8192 else None, 700, ' TFLOP/s')}",
        f"- Triton attention forward vs SDPA flash, seq ≥ 4096 (worst shape): {_judged(min(forward.values()) if forward else None, 1.0)}",
        f"- Triton attention forward+backward vs SDPA flash (worst shape): {_judged(min(train.values()) if train else None, 0.9)}",
        f"- CUDA C++ matmul vs cuBLAS at 4096³: {_judged(cuda_cpp, 0.6)}",
    ]
