"""Where the numbers come from: each run's id, device, host, date, and the software it ran with."""

from __future__ import annotations

import json

from zhisuan.bench.core import units
from zhisuan.bench.core.results import Result, short_shape
from zhisuan.bench.report import fmt
from zhisuan.bench.report.blocks import Block, Cell, Column, Heading, Table, Text
from zhisuan.bench.report.grouping import group_by, runs
from zhisuan.bench.report.sections.common import status_cell

ENV_ORDER = (
    "zhisuan", "git_sha", "torch", "triton", "numpy", "python", "cuda", "cuda_driver", "gpus",
    "cpu", "cpu_cores", "torch_threads", "os", "kernels_C_build",
)  # fmt: skip


def runs_section(results: list[Result]) -> list[Block]:
    rows = []
    for run in runs(results):
        when = fmt.utc(run.started)
        if fmt.utc(run.ended) != when:
            when += f" to {fmt.utc(run.ended)}"
        failed = Cell(str(run.failed), "fail" if run.failed else "ok")
        rows.append(
            [Cell(run.run_id), Cell(", ".join(run.kinds)), Cell(run.devices)]
            + [Cell(", ".join(run.hosts)), Cell(when), Cell(str(run.total)), failed]
        )
    columns = [Column("run id"), Column("kind"), Column("device"), Column("host"), Column("date")]
    columns += [Column("results", True), Column("not ok", True)]
    return [Heading("Runs"), Table(columns, rows, "Versions of each run: see Environment at the end.")]


def environment_tables(results: list[Result]) -> list[Block]:
    """The software each run used: one column per distinct environment (the hosts of one cluster
    run share a column), one row per field, so differences between runs read across a row."""

    def fingerprint(r: Result) -> tuple:
        return (json.dumps({k: v for k, v in r.env.items() if k != "host"}, sort_keys=True, default=str),)

    groups = [members for members in group_by(results, fingerprint).values() if members[0].env]
    blocks: list[Block] = [Heading("Environment")]
    if not groups:
        return blocks + [Text("No environment was recorded with these results.", "muted")]
    envs = [members[0].env for members in groups]
    fields = [k for k in ENV_ORDER if any(k in env for env in envs)]
    fields += sorted({k for env in envs for k in env if k not in ENV_ORDER and k != "host"})
    columns = [Column("field", nowrap=True)]
    for members in groups:
        run_ids = ", ".join(dict.fromkeys(r.run_id or "(no run id)" for r in members))
        hosts = ", ".join(dict.fromkeys(str(r.env.get("host", "unknown")) for r in members))
        columns.append(Column(f"{run_ids} (host {hosts})"))
    rows = []
    for k in fields:
        values = [fmt.plain(env.get(k)) for env in envs]
        differs = len(set(values)) > 1
        rows.append(
            [Cell(f"{k} (differs)" if differs else k, "warn" if differs else None)]
            + [Cell(v) for v in values]
        )
    caption = "Versions and build of the software each run used"
    caption += "; fields that differ between runs are marked." if len(envs) > 1 else "."
    return blocks + [Table(columns, rows, caption)]


def other_section(kind: str, results: list[Result]) -> list[Block]:
    """Results of a kind this report has no dedicated view for: listed, never dropped."""
    columns = [Column("op"), Column("backend"), Column("shape"), Column("dtype"), Column("device")]
    columns += [Column("median time", True), Column("status"), Column("run")]
    rows = [
        [Cell(r.op), Cell(r.backend), Cell(short_shape(r.op, r.shape)), Cell(r.dtype), Cell(r.device_name)]
        + [Cell(units.duration(r.median_s) if r.status == "ok" else r.status), status_cell(r), Cell(r.run_id)]
        for r in results
    ]
    return [Heading(f"Results of kind '{kind}'"), Table(columns, rows, "No dedicated view for this kind.")]
