"""Attention forward throughput at one standard shape: fp32 on CPUs, bf16 and fp16 on GPUs.

CPU: batch 1, 8 heads, seq 2048, head_dim 64; GPU: batch 4, 16 heads, seq 4096, head_dim 128 (16k
tokens, the FlashAttention benchmarks' shape). Non-causal. Every available backend of the registry
is checked against the float64 reference with an absolute bound (zhisuan.bench.validate.tolerance), then
timed; the record is the fastest, judged against the datasheet peak (GPU) or the measured FMA peak
(CPU), with every backend's figure in extra.
"""

from __future__ import annotations

from zhisuan.bench.harness import checktime
from zhisuan.bench.validate import tolerance
from zhisuan.bench.validate.context import CheckContext
from zhisuan.bench.workloads import spec_for
from zhisuan.kernels import registry

TITLE = "Attention throughput"
SEED = 13


def shape_of(ctx: CheckContext) -> dict:
    batch, heads, seq, head_dim = ctx.plan.attention_shape
    return spec_for("attention").shape(batch, heads, heads, seq, seq, head_dim, causal=False)


def measure_dtype(ctx: CheckContext, dtype: str):
    spec = spec_for("attention")
    storage = registry.parse_dtype(dtype)
    shape = shape_of(ctx)
    backends, skipped = ctx.runnable_backends("attention", storage)
    if not backends:
        reasons = "; ".join(f"{k}: {v}" for k, v in skipped.items())
        return ctx.skip(
            ctx.record("attention", TITLE, shape=shape, dtype=dtype), f"no backend for {dtype}: {reasons}"
        )
    inputs = spec.make_inputs(shape, storage, ctx.device.torch_device, SEED)
    reference = spec.reference(inputs)
    q, k, v = inputs.args
    against = checktime.Check(
        reference,
        tolerance=tolerance.attention_tolerance(q, k, v, reference, inputs.kwargs["scale"]),
        rule=tolerance.describe("attention"),
    )
    rows, failures = [], []
    for backend in backends:
        ctx.step(f"attention {dtype} {backend.name}")
        result = ctx.record("attention", TITLE, backend=backend.name, shape=shape, dtype=dtype)
        result.flops, result.bytes = spec.flops(shape), spec.bytes(shape, storage.itemsize)
        checktime.check_then_time(result, spec.bind(backend, inputs), against, ctx.sampling(), dtype,
                                  inputs=inputs.tensors())  # fmt: skip
        if result.status in ("check-failed", "mutated", "suspect"):
            failures.append(f"{backend.name} {result.status}: {result.error}")
        elif result.status == "error":  # e.g. a pinned SDPA kernel that does not take this shape
            skipped[backend.name] = f"raised {result.error}"
        rows.append(result)
    unit, scale = ctx.flop_unit()
    timed = [r for r in rows if r.flops_per_s]
    best = max(timed, key=lambda r: r.flops_per_s) if timed else rows[0]
    best.extra.update(
        backends={r.backend: (r.flops_per_s / scale if r.flops_per_s else None) for r in rows},
        skipped_backends=skipped,
    )
    if failures:
        return ctx.finish(ctx.fail(best, "wrong output: " + "; ".join(failures), unit=unit))
    if not timed:
        return ctx.finish(ctx.fail(best, "every backend raised: " + "; ".join(skipped.values()), unit=unit))
    rule = ctx.rule("attention", dtype)
    basis, text = ctx.basis_figure(rule, dtype) if rule else (None, "")
    fastest = next(b for b in backends if b.name == best.backend)

    def remeasure():
        """The fastest backend once more, on the same inputs."""
        checktime.check_then_time(best, spec.bind(fastest, inputs), against, ctx.sampling(), dtype)
        return (best.flops_per_s or 0.0, *ctx.basis_figure(rule, dtype))

    ctx.judge(best, value=best.flops_per_s, unit=unit, rule=rule, basis=basis, basis_text=text, scale=scale,
              reason=f"best backend {best.backend}", remeasure=remeasure)  # fmt: skip
    return ctx.finish(best)


def run(ctx: CheckContext) -> list:
    dtypes = ("fp32",) if ctx.kind == "cpu" else ("bf16", "fp16")
    return [measure_dtype(ctx, dtype) for dtype in dtypes]
