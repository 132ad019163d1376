"""Rank 0's view of the whole run: stragglers, integrity across ranks, the cluster's PFLOPS, summary.

- Stragglers: per check (op and dtype) among devices of one kind (same device name), any device
  whose figure is below the fleet median by more than the margin (default 5%) is listed. Only
  throughput checks count (a collective's figure is shared by its ranks; integrity is a count).
- Integrity across ranks: every rank multiplies the same seeded inputs; ranks of one configuration
  (chip, backend, dtype, size, CPU threads) must produce the same bits. Ranks whose digest differs
  from the majority's are a FAIL, named.
- Cluster PFLOPS: the sum of the measured matmul throughput of the headline dtype (bf16 on
  accelerators, fp32 on CPUs) over the ranks, beside the nameplate: the sum of datasheet peaks (per
  device; per host for CPU ranks, which share one package). No nameplate when any device lacks a peak, with the reason.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass

from zhisuan.bench.core.accel import is_accelerator, size_class
from zhisuan.bench.core.results import Result
from zhisuan.bench.validate.thresholds import worst

THROUGHPUT_CHECKS = (
    "matmul", "stream-copy", "stream-scale", "stream-add", "stream-triad", "attention", "h2d", "d2h", "burn-in",
)  # fmt: skip
HEADLINE_DTYPE = {"cpu": "fp32", "accelerator": "bf16"}  # by zhisuan.bench.core.accel.size_class


@dataclass(frozen=True)
class Member:
    """One rank's device, as rank 0 learns it at the start."""

    rank: int
    host: str
    device: str
    device_name: str
    kind: str
    peak_tflops: float | None  # datasheet / derived peak of the headline dtype
    peak_status: str | None
    why_no_peak: str | None


def stragglers(records: list[Result], margin_pct: float) -> list[dict]:
    groups = defaultdict(list)
    for r in records:
        value = r.extra.get("value")
        if r.op in THROUGHPUT_CHECKS and r.extra.get("verdict") in ("PASS", "WARN", "FAIL") and value:
            groups[(r.op, r.dtype, r.device_name)].append(r)
    found = []
    for (op, dtype, _), group in groups.items():
        if len({r.extra["rank"] for r in group}) < 2:
            continue
        median = statistics.median(r.extra["value"] for r in group)
        for r in group:
            deficit = 100.0 * (median - r.extra["value"]) / median
            if deficit > margin_pct:
                found.append(
                    {
                        "check": f"{op} {dtype}".strip(),
                        "host": r.extra["host"],
                        "rank": r.extra["rank"],
                        "value": r.extra["value"],
                        "median": median,
                        "unit": r.extra.get("unit", ""),
                        "deficit_pct": deficit,
                    }
                )
    return sorted(found, key=lambda s: (s["check"], s["rank"]))


def cross_rank_integrity(records: list[Result], template: Result | None) -> list[Result]:
    """One record per configuration shared by 2+ ranks: PASS when every digest agrees."""
    groups = defaultdict(list)
    for r in records:
        if r.op == "integrity" and r.extra.get("digest"):
            groups[r.extra["config"]].append(r)
    out = []
    for config, group in groups.items():
        if len({r.extra["rank"] for r in group}) < 2:
            continue
        counts = Counter(r.extra["digest"] for r in group)
        majority, _ = counts.most_common(1)[0]
        odd = [r for r in group if r.extra["digest"] != majority]
        first = group[0]
        result = Result(
            kind="validate",
            op="integrity",
            backend=first.backend,
            shape=dict(first.shape),
            dtype=first.dtype,
            device=f"{len(group)} ranks",
            device_name=first.device_name,
            env=template.env if template else {},
            run_id=first.run_id,
        )
        ranks = [r.extra["rank"] for r in group]
        result.extra.update(
            check="Numerical integrity across ranks (same inputs, same bits)",
            value=float(len(odd)),
            unit="ranks",
            threshold={
                "pass": 0.0,
                "warn": 0.0,
                "basis": "ranks whose product differs from the majority's",
                "reference": None,
                "compare": "<=",
            },  # fmt: skip
            host=first.extra["host"],
            rank=-1,  # a fleet-wide record, not one rank's
            world=first.extra["world"],
            ranks=ranks,
            config=config,
            digests={str(r.extra["rank"]): r.extra["digest"] for r in group},
        )
        if odd:
            names = ", ".join(f"rank {r.extra['rank']} ({r.extra['host']} {r.device})" for r in odd)
            result.extra.update(
                verdict="FAIL",
                reason=f"{names} computed different bits from the other {len(group) - len(odd)} rank(s)",
            )
        else:
            result.extra.update(verdict="PASS", reason=f"ranks {ranks} computed identical bits")
        out.append(result)
    return out


def cluster_flops(records: list[Result], members: list[Member]) -> dict:
    kinds = {m.kind for m in members}
    accelerators = sorted(k for k in kinds if is_accelerator(k))
    dtype = HEADLINE_DTYPE[size_class(accelerators[0] if accelerators else "cpu")]
    measured = {
        r.extra["rank"]: r.flops_per_s
        for r in records
        if r.op == "matmul" and r.dtype == dtype and r.flops_per_s and r.status == "ok"
    }
    out = {
        "dtype": dtype,
        "ranks": len(members),
        "measured_ranks": len(measured),
        "achieved_pflops": sum(measured.values()) / 1e15 if measured else None,
        "nameplate_pflops": None,
        "nameplate_reason": None,
    }
    if len(kinds) > 1:
        out["nameplate_reason"] = f"a mix of {' and '.join(sorted(kinds))} ranks: no single nameplate"
        return out
    missing = [m for m in members if m.peak_tflops is None]
    if missing:
        m = missing[0]
        out["nameplate_reason"] = f"rank {m.rank} ({m.device_name}) has no {dtype} peak: {m.why_no_peak}"
        return out
    if not accelerators:  # ranks on one host share its CPU: count each host's package once
        per_host = {m.host: m.peak_tflops for m in members}
        nameplate = sum(per_host.values())
    else:
        nameplate = sum(m.peak_tflops for m in members)
    out["nameplate_pflops"] = nameplate / 1e3
    out["nameplate_status"] = sorted({m.peak_status for m in members})
    if out["achieved_pflops"] is not None:
        out["pct_of_nameplate"] = 100.0 * out["achieved_pflops"] / out["nameplate_pflops"]
    return out


def summary(records: list[Result], members: list[Member], *, level: str, duration_s: float, margin_pct: float,
            interrupted: bool, template: Result) -> tuple[list[Result], Result]:  # fmt: skip
    """(records rank 0 adds: integrity across ranks) and the summary record that ends the run."""
    added = cross_rank_integrity(records, template)
    everything = records + added
    slow = stragglers(records, margin_pct)
    verdict = worst(r.extra.get("verdict", "SKIP") for r in everything)
    if slow and verdict == "PASS":
        verdict = "WARN"
    per_rank = defaultdict(list)
    for r in records:
        per_rank[r.extra.get("rank")].append(r.extra.get("verdict", "SKIP"))
    result = template
    result.extra.update(
        check="Validation summary",
        verdict=verdict,
        level=level,
        duration_s=duration_s,
        interrupted=interrupted,
        margin_pct=margin_pct,
        devices=[
            {
                "host": m.host,
                "rank": m.rank,
                "device": m.device,
                "device_name": m.device_name,
                "verdict": worst(per_rank.get(m.rank, [])),
            }  # fmt: skip
            for m in members
        ],
        stragglers=slow,
        cluster=cluster_flops(records, members),
        counts=dict(Counter(r.extra.get("verdict", "SKIP") for r in everything)),
    )
    return added, result
