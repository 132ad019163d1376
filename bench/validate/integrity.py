"""Numerical integrity: the same matmul on the same inputs, repeated, must be bitwise identical.

A chip that computes an occasional wrong bit (silent data corruption: a marginal core, bad SRAM,
an overheating tensor core) passes every tolerance check now and then; it cannot repeat itself
bit for bit. Per backend, the product is checked once against float64 (an absolute bound), then
repeated; any repeat that differs in any bit is a FAIL, reported with the device and iteration.
The first result's SHA-256 digest goes into the record: in cluster mode rank 0 compares digests
across ranks of one kind (same chip, backend, dtype and thread count), where they must agree too.
"""

from __future__ import annotations

import hashlib

import torch

from zhisuan.bench.harness import checktime
from zhisuan.bench.validate import tolerance
from zhisuan.bench.validate.context import CheckContext
from zhisuan.bench.validate.matmul import Candidate, candidates, make_inputs

TITLE = "Numerical integrity (bitwise-repeatable matmul)"


def digest(t: torch.Tensor) -> str:
    data = t.detach().contiguous().cpu().view(torch.uint8).numpy().tobytes()
    return hashlib.sha256(data).hexdigest()[:32]


_INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def bits(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bits as integers: equal exactly when bitwise identical (NaN, -0.0 included)."""
    return t.contiguous().view(_INT_OF_SIZE[t.element_size()])


def first_difference(a: torch.Tensor, b: torch.Tensor) -> str:
    """Where two results differ: count of elements, the first index and both values."""
    differs = bits(a) != bits(b)
    count = int(differs.sum())
    if not count:
        return "no element differs"
    index = int(differs.reshape(-1).nonzero()[0])
    row, col = divmod(index, a.shape[1])
    return (
        f"{count} element(s) differ, first at [{row}, {col}]: "
        f"{float(a.reshape(-1)[index])!r} vs {float(b.reshape(-1)[index])!r}"
    )


def check_backend(ctx: CheckContext, candidate: Candidate, dtype: str):
    size, repeats = ctx.plan.integrity_size, ctx.plan.integrity_repeats
    name, fn = candidate.name, candidate.fn
    result = ctx.record(
        "integrity", TITLE, backend=name, shape={"M": size, "N": size, "K": size}, dtype=dtype
    )
    a, b = make_inputs(ctx, dtype, size)
    reference = tolerance.reference_product(a, b)
    against = checktime.Check(
        reference,
        tolerance=tolerance.matmul_tolerance(a, b, reference, candidate.math, candidate.out_dtype),
        rule=tolerance.describe("matmul"),
    )
    first = fn(a, b)
    passed = checktime.judge_output(result, first, against)
    threads = torch.get_num_threads() if ctx.kind == "cpu" else None
    result.extra.update(
        repeats=repeats,
        digest=digest(first),
        config=f"{ctx.device.name} | {name} | {dtype} | {size}^3"
        + (f" | {threads} threads" if threads else ""),
    )
    threshold = {"pass": 0.0, "warn": 0.0, "basis": "count of repeats differing in any bit from the first",
                 "reference": None, "compare": "<="}  # fmt: skip
    if not passed:
        ctx.fail(
            result, f"wrong product on {ctx.device.torch_device}: {result.error}", unit="differing repeats"
        )
        result.extra["threshold"] = threshold
        return ctx.finish(result)
    mismatches = []
    for iteration in range(1, repeats + 1):
        if iteration % 10 == 1:
            ctx.step(f"integrity {name} repeat {iteration}")
        out = fn(a, b)
        if not torch.equal(bits(out), bits(first)):
            mismatches.append(f"iteration {iteration}: {first_difference(out, first)}")
    result.extra.update(
        value=float(len(mismatches)),
        unit="differing repeats",
        threshold=threshold,
        mismatches=mismatches[:10],
    )
    if mismatches:
        result.extra.update(
            verdict="FAIL",
            reason=f"silent data corruption on {ctx.device.torch_device} ({ctx.host} rank {ctx.rank}): "
            f"{len(mismatches)} of {repeats} repeats differ; {mismatches[0]}",
        )
    else:
        result.extra.update(verdict="PASS", reason=f"{repeats} repeats bitwise identical")
    return ctx.finish(result)


def run(ctx: CheckContext) -> list:
    dtype = "fp32" if ctx.kind == "cpu" else "bf16"
    backends, skipped = candidates(ctx, dtype)
    if not backends:
        reasons = "; ".join(f"{k}: {v}" for k, v in skipped.items())
        return [
            ctx.skip(ctx.record("integrity", TITLE, dtype=dtype), f"no matmul backend for {dtype}: {reasons}")
        ]
    return [check_backend(ctx, candidate, dtype) for candidate in backends]
