"""Stage `bench`: the benchmark's quick set, through the harness's runner (check first, then time).

    python -m zhisuan.bench.dev.devicecheck.benchmarks --out OUT/results.jsonl [--sizes tiny]

Every result is written to the JSON Lines file as it arrives, most important job first, so a stage
stopped at its cap keeps what it measured. Every timed kernel was first checked against a float64
reference on the same inputs (the runner's rule); caches are flushed between samples.
On a machine without a GPU the stage runs the same jobs at tiny sizes on the CPU: a dry run of the
plumbing, whose numbers mean nothing.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from zhisuan.bench.workloads.suites import suite_shapes

MATMUL_BACKENDS = ["triton", "cpp", "cupy", "torch"]  # cpp: the CUDA C++ kernels on a GPU
# torch: scaled_dot_product_attention with torch's own choice of kernel (also the CPU dry run's).
ATTENTION_BACKENDS = ["triton", "sdpa-flash", "sdpa-cudnn", "torch"]
TIME_BUDGET_S = {"quick": 0.3, "tiny": 0.02}  # seconds of timed samples per benchmark


def _square(*sizes: int) -> list[dict]:
    return [{"M": s, "N": s, "K": s} for s in sizes]


def _attention(batch: int, heads: int, seq: int, head_dim: int) -> list[dict]:
    return [
        {
            "batch": batch,
            "heads": heads,
            "heads_kv": heads,
            "seq_q": seq,
            "seq_k": seq,
            "head_dim": head_dim,
            "causal": c,
        }
        for c in (False, True)
    ]


def jobs(sizes: str) -> list[tuple[str, list[dict], list[str], list[str]]]:
    """(op, shapes, dtypes, backends) in the order they run: what the GPU issue's table needs first."""
    if sizes == "tiny":
        square, attention, llm = _square(97), _attention(1, 2, 97, 32), [{"M": 7, "N": 130, "K": 97}]
    else:
        square, attention = _square(8192, 4096), _attention(4, 16, 4096, 128)
        llm = suite_shapes("llama3-8b", "matmul", "cuda") + suite_shapes("qwen2.5-72b", "matmul", "cuda")
    return [
        ("matmul", square, ["bf16"], MATMUL_BACKENDS),
        ("attention", attention, ["bf16"], ATTENTION_BACKENDS),
        ("attention-train", attention, ["bf16"], ["triton", "sdpa-flash", "torch"]),
        ("matmul", square[:1], ["fp16", "fp8e4m3", "fp32"], MATMUL_BACKENDS),
        ("matmul", llm, ["bf16"], ["triton", "torch"]),
    ]


def run(out: Path, sizes: str, device: str) -> int:
    from zhisuan.bench.core import timing, units
    from zhisuan.bench.core.result_files import ResultWriter
    from zhisuan.bench.core.results import new_run_id, short_shape
    from zhisuan.bench.harness import runner

    run_id, failed_jobs = new_run_id(), 0
    with ResultWriter(out) as writer:

        def record(result) -> None:
            writer.write(result)
            rate = units.rate(result.flops_per_s, "FLOP/s") if result.status == "ok" else result.status
            check = (
                f"err {result.check['max_abs_err']:.2g} / tol {result.check['tolerance']:.2g}"
                if result.check
                else ""
            )
            print(f"{result.op} {result.backend} {short_shape(result.op, result.shape)} {result.dtype}: {rate} {check}"
                  f"{' ' + result.error if result.error else ''}", flush=True)  # fmt: skip

        for op, shapes, dtypes, backends in jobs(sizes):
            try:
                plan = runner.plan_run([op], {op: shapes}, dtypes, device, backends)
                for what, reason in plan.skipped:
                    print(f"skipped {what}: {reason}", flush=True)
                runner.execute(plan, timing_plan=timing.TimingPlan(time_budget_s=TIME_BUDGET_S[sizes]),
                               on_result=record, run_id=run_id)  # fmt: skip
            except Exception:  # one job's crash (out of memory in a reference, say) ends that job only
                failed_jobs += 1
                print(f"job {op} {dtypes} failed:\n{traceback.format_exc()}", flush=True)
    return 1 if failed_jobs else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the benchmark's quick set, checked then timed")
    parser.add_argument("--out", required=True, type=Path, help="JSON Lines file of the results")
    parser.add_argument("--sizes", choices=("auto", "quick", "tiny"), default="auto",
                        help="auto: quick on a GPU, tiny on a CPU (a dry run)")  # fmt: skip
    args = parser.parse_args(argv)
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    sizes = args.sizes if args.sizes != "auto" else ("quick" if device == "cuda" else "tiny")
    print(f"bench: {sizes} sizes on {device}", flush=True)
    return run(args.out, sizes, device)


if __name__ == "__main__":
    sys.exit(main())
