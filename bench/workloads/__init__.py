"""One OpSpec per op (inputs, FLOPs, bytes, reference, tolerance) and the named shape suites."""

from zhisuan.bench.core.errors import UsageError
from zhisuan.bench.workloads.attention import AttentionSpec
from zhisuan.bench.workloads.attention_train import AttentionTrainSpec
from zhisuan.bench.workloads.base import Inputs, OpSpec
from zhisuan.bench.workloads.matmul import MatmulSpec

SPECS: dict[str, OpSpec] = {
    "matmul": MatmulSpec(),
    "attention": AttentionSpec(),
    "attention-train": AttentionTrainSpec(),
}


def spec_for(op: str) -> OpSpec:
    if op not in SPECS:
        raise UsageError(f"unknown op {op!r}; benchmarkable ops: {', '.join(SPECS)}")
    return SPECS[op]


__all__ = ["SPECS", "spec_for", "OpSpec", "Inputs"]
