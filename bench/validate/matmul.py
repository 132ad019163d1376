"""Matmul throughput: the maximum achievable FLOP/s per dtype, over a sweep of square shapes.

Per dtype, every backend that can run here (quick on a GPU: the vendor's only; ours join at the
standard level) is checked against a float64 reference on each shape, with an absolute error bound
(zhisuan.bench.validate.tolerance), and only then timed. The record of a dtype is its fastest (backend,
shape): its timing and rates, and in extra the whole sweep, each backend's best and median over
the shapes, and the verdict of the best figure against the threshold (datasheet peak on GPUs, the
measured FMA peak on CPUs).

dtypes: CPU fp32, fp64. GPU fp32 (TF32 off), tf32 (fp32 storage, TF32 tensor-core math), bf16,
fp16, and fp8 (e4m3 through torch._scaled_mm, bf16 output) on chips that have it (sm_89 and later).
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch

from zhisuan.bench.core import flops
from zhisuan.bench.harness import checktime
from zhisuan.bench.validate import tolerance
from zhisuan.bench.validate.context import CheckContext
from zhisuan.bench.workloads import spec_for
from zhisuan.kernels import registry

CPU_DTYPES = ("fp32", "fp64")
GPU_DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8e4m3")
SEED = 11
TITLE = "Matmul throughput"


@dataclass(frozen=True)
class Candidate:
    name: str
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    math: str  # the arithmetic's dtype (peaks and error bounds are looked up by it)
    out_dtype: torch.dtype


@contextlib.contextmanager
def tf32_matmul(enabled: bool):
    """torch's cuBLAS fp32 matmul with TF32 math on or off, restored afterwards."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def candidates(ctx: CheckContext, dtype: str) -> tuple[list[Candidate], dict[str, str]]:
    """(the backends that run dtype here, {backend: why not}).

    fp8: torch._scaled_mm (the vendor's; bf16 output) and registry backends that take fp8 inputs
    (their output is fp8, the op's convention: output in the input dtype).
    """
    chosen = []
    if dtype == "fp8e4m3":
        reason = fp8_missing(ctx)
        if reason:
            return [], {"torch._scaled_mm": reason}
        chosen.append(Candidate("torch._scaled_mm", scaled_mm, dtype, torch.bfloat16))
    storage = torch.float32 if dtype == "tf32" else registry.parse_dtype(dtype)
    runnable, skipped = ctx.runnable_backends("matmul", storage)
    for backend in runnable:
        math = backend.math_dtypes.get("fp32", "fp32") if storage == torch.float32 else dtype
        if backend.name == "torch" and dtype == "tf32":
            math = "tf32"  # the flag set around the whole check (tf32_matmul)
        if math != dtype:
            skipped[backend.name] = f"computes {registry.dtype_name(storage)} in {math}, not {dtype}"
            continue
        chosen.append(Candidate(backend.name, backend.fn, math, storage))
    return chosen, skipped


def fp8_missing(ctx: CheckContext) -> str | None:
    if ctx.kind != "cuda":
        return "fp8 matmul needs a GPU with fp8 tensor cores"
    if not hasattr(torch, "float8_e4m3fn") or not hasattr(torch, "_scaled_mm"):
        return f"torch {torch.__version__} has no float8_e4m3fn / _scaled_mm"
    major, minor = torch.cuda.get_device_capability(torch.device(ctx.device.torch_device))
    if (major, minor) < (8, 9):
        return f"compute capability {major}.{minor} has no fp8 tensor cores (needs 8.9 or later)"
    return None


def scaled_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (M, K) row-major @ b (K, N) column-major, fp8 e4m3 in, bf16 out, unit scales."""
    one = torch.ones((), device=a.device, dtype=torch.float32)
    return torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)


def make_inputs(ctx: CheckContext, dtype: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    shape = {"M": size, "N": size, "K": size}
    if dtype == "fp8e4m3":
        a, b = spec_for("matmul").make_inputs(shape, torch.float32, ctx.device.torch_device, SEED).args
        # Casting makes the inputs exactly fp8 values; _scaled_mm wants B column-major.
        return a.to(torch.float8_e4m3fn), b.to(torch.float8_e4m3fn).t().contiguous().t()
    storage = torch.float32 if dtype == "tf32" else registry.parse_dtype(dtype)
    return spec_for("matmul").make_inputs(shape, storage, ctx.device.torch_device, SEED).args


def sweep_row(result) -> dict:
    return {
        "backend": result.backend,
        "shape": result.shape,
        "median_s": result.median_s,
        "flops_per_s": result.flops_per_s,
        "pct_peak": result.pct_peak,
        "pct_measured_peak": result.pct_measured_peak,
        "max_abs_err": result.check.get("max_abs_err"),
        "tolerance": result.check.get("tolerance"),
        "passed": result.check.get("passed"),
        "status": result.status,
        "error": result.error,
    }


def measure_one(ctx: CheckContext, backend: Candidate, dtype: str, inputs, reference, result=None):
    """One (backend, shape): checked against float64 with the absolute bound, then timed.

    A new record, or `result` measured again (the re-measure of a shortfall).
    """
    a, b = inputs
    size = a.shape[0]
    if result is None:
        result = ctx.record("matmul", TITLE, backend=backend.name, shape={"M": size, "N": size, "K": size},
                            dtype=dtype)  # fmt: skip
    result.flops = flops.matmul_flops(size, size, size)
    result.bytes = flops.matmul_bytes(size, size, size, a.element_size())
    against = checktime.Check(
        reference,
        tolerance=tolerance.matmul_tolerance(a, b, reference, backend.math, backend.out_dtype),
        rule=tolerance.describe("matmul"),
    )
    fn = backend.fn
    checktime.check_then_time(result, lambda: fn(a, b), against, ctx.sampling(), backend.math, inputs=(a, b))
    return result


def failure_text(what: str, result) -> str:
    """A failed measurement in a few words: wrong output, a crash, inputs written into, an
    impossible rate ("suspect")."""
    if result.status == "check-failed":
        return f"{what}: {result.error}"
    if result.status == "error":
        return f"{what} crashed: {result.error}"
    return f"{what} {result.status}: {result.error}"


def measure_dtype(ctx: CheckContext, dtype: str):
    """One record for a dtype: the fastest (backend, shape), with the sweep in extra."""
    backends, skipped = candidates(ctx, dtype)
    sizes = ctx.plan.fp8_sizes if dtype == "fp8e4m3" else ctx.plan.matmul_sizes
    if not backends:
        reasons = (
            "; ".join(f"{name}: {why}" for name, why in skipped.items()) or "no matmul backend registered"
        )
        return ctx.skip(
            ctx.record("matmul", TITLE, dtype=dtype), f"no backend can run {dtype} here ({reasons})"
        )
    rows, failures = [], []
    for size in sizes:
        a, b = make_inputs(ctx, dtype, size)
        reference = a.to(torch.float64) @ b.to(torch.float64)
        for backend in backends:
            ctx.step(f"matmul {dtype} {backend.name} {size}")
            result = measure_one(ctx, backend, dtype, (a, b), reference)
            if result.status != "ok":
                failures.append(failure_text(f"{backend.name} {size}^3", result))
            rows.append(result)
        del a, b, reference
    return summarize(ctx, dtype, rows, failures, skipped, backends)


def summarize(ctx: CheckContext, dtype: str, rows: list, failures: list[str], skipped: dict[str, str],
              backends: list[Candidate]):  # fmt: skip
    unit, scale = ctx.flop_unit()
    timed = [r for r in rows if r.flops_per_s]
    best = max(timed, key=lambda r: r.flops_per_s) if timed else rows[-1]
    per_backend = {}
    for name in dict.fromkeys(r.backend for r in rows):
        rates = [r.flops_per_s for r in rows if r.backend == name and r.flops_per_s]
        per_backend[name] = {
            "best": max(rates) / scale if rates else None,
            "median": statistics.median(rates) / scale if rates else None,
            "unit": unit,
        }
    best.extra.update(
        sweep=[sweep_row(r) for r in rows],
        backends=per_backend,
        skipped_backends=skipped,
        median_over_shapes=per_backend[best.backend]["median"],
    )
    if failures:
        return ctx.finish(ctx.fail(best, "wrong or crashed: " + "; ".join(failures), unit=unit))
    rule = ctx.rule("matmul", dtype)
    basis, basis_text = ctx.basis_figure(rule, dtype) if rule else (None, "")
    reason = f"best {best.backend} at {best.shape['M']}^3; median over shapes {per_backend[best.backend]['median']:.4g} {unit}"

    def remeasure():
        """The best (backend, shape) once more, on the same seeded inputs."""
        backend = next(c for c in backends if c.name == best.backend)
        a, b = make_inputs(ctx, dtype, best.shape["M"])
        measure_one(ctx, backend, dtype, (a, b), a.to(torch.float64) @ b.to(torch.float64), best)
        return (best.flops_per_s or 0.0, *ctx.basis_figure(rule, dtype))

    ctx.judge(best, value=best.flops_per_s, unit=unit, rule=rule, basis=basis, basis_text=basis_text,
              scale=scale, reason=reason, remeasure=remeasure)  # fmt: skip
    return ctx.finish(best)


def run(ctx: CheckContext) -> list:
    """One record per dtype of this device."""
    records = []
    for dtype in CPU_DTYPES if ctx.kind == "cpu" else GPU_DTYPES:
        if ctx.should_stop():
            break
        if ctx.kind == "cuda" and dtype in ("fp32", "tf32"):
            with tf32_matmul(dtype == "tf32"):
                records.append(measure_dtype(ctx, dtype))
        else:
            records.append(measure_dtype(ctx, dtype))
    return records
