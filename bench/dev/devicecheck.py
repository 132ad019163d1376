"""The GPU session's one call: build check, GPU tests, full-size correctness and the benchmark.

    python -m zhisuan.bench.dev.devicecheck --out "$OUT"            # on the lent H100/H200

Writes into --out: devicecheck.jsonl (every result as it arrives), pytest-gpu.log, validate.jsonl
with validate-report/ (`zhisuan validate --level quick` on the GPU), and <device>.md (the table for
docs/benchmarks/, with device, driver, versions, date, command).
Every timed kernel was first checked against a float64 reference on the same inputs (the runner's
rule); L2 is flushed between samples. Targets (issue 3) are evaluated at the end of the Markdown.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from zhisuan.bench.core import chips, markdown, timing, units
from zhisuan.bench.core.environment import environment
from zhisuan.bench.core.result_files import ResultWriter
from zhisuan.bench.core.results import Result, new_run_id, short_shape
from zhisuan.bench.harness import runner
from zhisuan.bench.workloads.suites import suite_shapes

MATMUL_BACKENDS = ["triton", "cpp", "torch", "cupy"]
ATTENTION_BACKENDS = ["triton", "torch", "sdpa-flash", "sdpa-efficient", "sdpa-cudnn"]
# batch x seq = 16k-128k tokens, FlashAttention-benchmark style.
ATTENTION_SHAPES = [
    (16, 16, 1024, 128),
    (4, 16, 4096, 128),
    (2, 16, 8192, 128),
    (16, 32, 4096, 64),
    (8, 16, 16384, 128),
]


def jobs(quick: bool) -> list[tuple[str, list[dict], list[str], list[str]]]:
    """(op, shapes, dtypes, backends) in the order they run: most important first."""
    square = [{"M": s, "N": s, "K": s} for s in ([4096, 8192] if quick else [1024, 2048, 4096, 8192, 16384])]
    llm = suite_shapes("llama3-8b", "matmul", "cuda") + suite_shapes("qwen2.5-72b", "matmul", "cuda")
    attn = [
        {"batch": b, "heads": h, "heads_kv": h, "seq_q": s, "seq_k": s, "head_dim": d, "causal": c}
        for b, h, s, d in (ATTENTION_SHAPES[1:3] if quick else ATTENTION_SHAPES)
        for c in (False, True)
    ]
    return [
        ("matmul", square, ["bf16"], MATMUL_BACKENDS),
        ("matmul", llm, ["bf16"], MATMUL_BACKENDS),
        ("attention", attn, ["bf16"], ATTENTION_BACKENDS),
        ("attention-train", attn[:4], ["bf16"], ["triton", "torch", "sdpa-flash"]),
        ("matmul", square[-2:], ["fp16", "fp8e4m3", "fp32"], MATMUL_BACKENDS),
    ]


def run_gpu_tests(out: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "tests"],
        capture_output=True,
        text=True,
    )
    (out / "pytest-gpu.log").write_text(proc.stdout + proc.stderr)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return lines[-1] if lines else f"pytest exited {proc.returncode} with no output"


def run_validate(out: Path) -> str:
    """`zhisuan validate --level quick` on this GPU; returns its verdict line (the last it printed)."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "validate", "--level", "quick", "--json", str(out / "validate.jsonl"),
         "--report-dir", str(out / "validate-report")],
        capture_output=True,
        text=True,
    )  # fmt: skip
    (out / "validate.log").write_text(proc.stdout + proc.stderr)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return f"exit {proc.returncode}: " + (lines[-1].strip() if lines else "no output")


def geomean(values: list[float]) -> float | None:
    return math.exp(statistics.fmean(math.log(v) for v in values)) if values else None


def speedups(results: list[Result], op: str, ours: str, theirs: str, dtype: str = "bf16") -> dict[str, float]:
    """Per shape label: their time / our time (> 1: ours is faster), for shapes both ran."""
    times: dict[tuple[str, str], float] = {}
    for r in results:
        if r.op == op and r.dtype == dtype and r.status == "ok":
            times[(r.backend, short_shape(op, r.shape))] = r.median_s
    return {
        shape: times[(theirs, shape)] / t
        for (backend, shape), t in times.items()
        if backend == ours and (theirs, shape) in times
    }


def target_lines(results: list[Result]) -> list[str]:
    llm = {s: v for s, v in speedups(results, "matmul", "triton", "torch").items() if " " in s}
    best_8192 = [r.flops_per_s for r in results if r.op == "matmul" and r.backend == "triton" and r.dtype == "bf16"
                 and r.shape.get("M") == 8192 and r.shape.get("N") == 8192 and r.status == "ok"]  # fmt: skip
    attn = speedups(results, "attention", "triton", "sdpa-flash")
    long_attn = {
        s: v for s, v in attn.items() if re.search(r"s(\d+)", s) and int(re.search(r"s(\d+)", s)[1]) >= 4096
    }
    train = speedups(results, "attention-train", "triton", "sdpa-flash")
    cuda_cpp = speedups(results, "matmul", "cpp", "torch").get("4096x4096x4096")

    def fmt(value, target, unit="×"):
        if value is None:
            return "not measured"
        return f"{value:.3g}{unit} ({'met' if value >= target else 'MISSED'}; target {target}{unit})"

    tflops = max(best_8192) / 1e12 if best_8192 else None
    return [
        f"- Triton matmul, geometric mean over the LLM shapes vs cuBLAS: {fmt(geomean(list(llm.values())), 0.95)}",
        f"- Triton matmul at 8192³ bf16: {fmt(tflops, 700, ' TFLOP/s')}",
        f"- Triton attention forward vs SDPA flash, seq ≥ 4096 (worst shape): "
        f"{fmt(min(long_attn.values()) if long_attn else None, 1.0)}",
        f"- Triton attention forward+backward vs SDPA flash (worst shape): {fmt(min(train.values()) if train else None, 0.9)}",
        f"- CUDA C++ matmul vs cuBLAS at 4096³: {fmt(cuda_cpp, 0.6)}",
    ]


def render(
    results: list[Result],
    device: chips.Device,
    test_summary: str,
    validate_summary: str,
    seconds: float,
    argv: list[str],
) -> str:
    env = environment()
    lines = [
        f"# GPU benchmark: {device.name}",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"- device: {device.name} ({device.properties}); driver {env.get('cuda_driver')}, CUDA {env['cuda']}",
        f"- versions: torch {env['torch']}, triton {env['triton']}, zhisuan git {env['git_sha']}",
        f"- command: `python -m zhisuan.bench.dev.devicecheck {' '.join(argv)}` ({seconds:.0f} s); GPU tests: {test_summary}",
        f"- `zhisuan validate --level quick`: {validate_summary} (validate.jsonl, validate-report/)",
        "- method: every kernel checked against a float64 reference first; L2 flushed between samples;"
        " median of the samples; % peak against the datasheet figure of the math dtype.",
        "",
        "## Targets (issue 3)",
        "",
        *target_lines(results),
        "",
        "## All results",
        "",
    ]
    rows = []
    for r in results:
        err = f"{r.check['max_abs_err']:.2g} / {r.check['tolerance']:.2g}" if r.check else units.DASH
        status = r.status if r.status == "ok" else f"{r.status}: {r.error}"
        extra = f" ({r.extra['sdpa_kernel']})" if "sdpa_kernel" in r.extra else ""
        rows.append([r.op, r.backend + extra, short_shape(r.op, r.shape), r.dtype, units.duration(r.median_s),
                     units.rate(r.flops_per_s, "FLOP/s"), units.percent(r.pct_peak), err, status])  # fmt: skip
    columns = ["op", "backend", "shape", "dtype", "median", "achieved", "% peak", "error / tol", "status"]
    lines.append(markdown.table(columns, rows))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="GPU correctness checks and benchmark in one call")
    parser.add_argument("--out", required=True, help="folder for the JSON Lines, the log and the Markdown")
    parser.add_argument(
        "--quick", action="store_true", help="fewer shapes (a first look, about a third of the time)"
    )
    parser.add_argument("--budget", type=float, default=0.3, help="seconds of timed samples per benchmark")
    parser.add_argument("--skip-tests", action="store_true", help="do not run the GPU tests first")
    parser.add_argument("--skip-validate", action="store_true", help="do not run zhisuan validate at the end")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("devicecheck: no CUDA device (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    test_summary = "skipped" if args.skip_tests else run_gpu_tests(out)
    print(f"GPU tests: {test_summary}", flush=True)
    device = chips.detect("cuda")
    run_id = new_run_id()
    results: list[Result] = []
    with ResultWriter(out / "devicecheck.jsonl") as writer:
        for op, shapes, dtypes, backends in jobs(args.quick):
            plan = runner.plan_run([op], {op: shapes}, dtypes, "cuda", backends)
            for what, reason in plan.skipped:
                print(f"skipped {what}: {reason}", flush=True)

            def record(result: Result) -> None:
                writer.write(result)
                results.append(result)
                rate = units.rate(result.flops_per_s, "FLOP/s") if result.flops_per_s else result.status
                print(f"{result.op} {result.backend} {short_shape(result.op, result.shape)} {result.dtype}: {rate}",
                      flush=True)  # fmt: skip

            runner.execute(
                plan,
                timing_plan=timing.TimingPlan(time_budget_s=args.budget),
                on_result=record,
                run_id=run_id,
            )
    validate_summary = "skipped" if args.skip_validate else run_validate(out)
    print(f"validate: {validate_summary}", flush=True)
    slug = re.sub(r"[^a-z0-9]+", "-", device.name.lower()).strip("-")
    text = render(
        results,
        device,
        test_summary,
        validate_summary,
        time.time() - start,
        argv if argv is not None else sys.argv[1:],
    )
    (out / f"{slug}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
