"""`zhisuan ab`'s verdict: each side's Results, and the gate's report over the paired epochs.

The report is compare's GateReport, so the terminal table, Markdown, JUnit and exit codes are the
same: a benchmark timed on both sides is judged by decision.from_epochs over its epochs; one that
fails its check on a side, or whose sides made different inputs, cannot be compared (exit 2); one
that exists only in CURRENT is new, one only in BASELINE missing (exit 2 unless --allow-missing).
"""

from __future__ import annotations

from zhisuan.bench.core.precision import SAMPLING_KEY
from zhisuan.bench.core.results import Result, new_run_id
from zhisuan.bench.gate import decision
from zhisuan.bench.gate.ab_measure import SIDES, Bench
from zhisuan.bench.gate.comparison import GateReport, Pair, Unmatched, describe
from zhisuan.bench.gate.envdiff import compare_environments


def build(benches: list[Bench], sides: list, device: str, settings, args) -> tuple[GateReport, list[Result]]:
    """The gate's report and every Result of both sides (timed ones carry all their samples)."""
    from zhisuan.bench.core import chips

    chip = chips.detect(device)
    report = GateReport(
        settings, allow_env_mismatch=args.allow_env_mismatch, allow_missing=args.allow_missing
    )
    run_ids = {label: f"{new_run_id()}-{label}" for label in SIDES}
    descriptions = {side.label: side.description for side in sides}
    results, matched = [], []
    for bench in benches:
        a, b = bench.results.get("A"), bench.results.get("B")
        for label, r in (("A", a), ("B", b)):
            if r is not None:
                r.run_id = run_ids[label]
                r.extra["ab"] = {"side": label, "source": descriptions[label]}
                results.append(r)
        if bench.unavailable:
            _unavailable(report, bench, a, b, chip)
        elif bench.problem:
            report.failures.append(f"{describe(b or a)}: {bench.problem}")
        elif bench.epochs:
            for label, r in (("A", a), ("B", b)):
                _fill(r, bench, label, chip)
            threshold, alpha = settings.for_result(b)
            assessment = decision.judge(bench.evidence(), threshold=threshold, alpha=alpha)
            report.pairs.append(Pair.judged(a, b, threshold, alpha, assessment))
            matched.append((a, b))
    if matched:
        report.env = compare_environments([a for a, _ in matched], [b for _, b in matched])
    order = {v: i for i, v in enumerate(decision.VERDICTS)}
    report.pairs.sort(key=lambda p: (order[p.verdict], -abs(p.ratio - 1)))
    return report, results


def _unavailable(report: GateReport, bench: Bench, a: Result | None, b: Result | None, chip) -> None:
    why = "; ".join(f"not in {label}: {reason}" for label, reason in sorted(bench.unavailable.items()))
    if b is not None and b.status == "ok":
        report.new.append(b)  # only CURRENT can run it
    elif a is not None and a.status == "ok":
        report.missing.append(a)  # CURRENT lost it
    else:
        c = bench.case
        # Neither side ran it: a timing-less record names the benchmark in the "not compared" list.
        named = Result(kind="kernel", op=c["op"], backend=bench.backend, shape=c["shape"], dtype=c["dtype"],
                       device=chip.torch_device, device_name=chip.name)  # fmt: skip
        report.unmatched.append(Unmatched(None, named, why))


def _fill(result: Result, bench: Bench, label: str, chip) -> None:
    """A side's samples, their summary and rates, and the record of how they were taken."""
    from zhisuan.bench.harness import checktime
    from zhisuan.bench.workloads import spec_for
    from zhisuan.kernels import registry

    # The peak the rates are set against: the backend's arithmetic (tf32 ...), as the runner does.
    backend = registry.registered(spec_for(result.op).registry_op).get(result.backend)
    math_dtype = backend.math_dtypes.get(result.dtype, result.dtype) if backend else result.dtype
    checktime.fill(result, bench.samples[label], chip, math_dtype)
    result.extra[SAMPLING_KEY] = {
        "unit": "ab",
        "round_sizes": bench.blocks[label],
        "epochs": len(bench.epochs),
        "stop": bench.stop,
    }
    result.extra["ab"]["log_ratios_by_epoch"] = bench.epochs
