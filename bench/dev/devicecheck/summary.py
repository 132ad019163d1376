"""summary.md: the call's findings for people, from the files it streamed (rewritten after each stage).

A failed or missing extension, a failed test and a stage stopped at its cap are said in bold at the
top of their section: a call whose CUDA build failed must not read like a clean one.
"""

from __future__ import annotations

import json
import tarfile
from collections import Counter
from pathlib import Path

from zhisuan.bench.core import markdown, units
from zhisuan.bench.core.markdown import bold, code, escape
from zhisuan.bench.core.results import Result, ResultFileError, short_shape
from zhisuan.bench.dev.devicecheck import files, plan, targets

TEST_OUTCOMES = ("passed", "failed", "error", "skipped")


def load_results(path: Path) -> list[Result]:
    """The Result records of a JSON Lines file; a line cut by a kill (or foreign) is left out."""
    found = []
    for record in files.read_records(path):
        try:
            found.append(Result.from_dict(record))
        except (ResultFileError, TypeError):
            continue
    return found


def _gpu_lines(env: dict) -> list[str]:
    devices = env.get("devices") or []
    smi = env.get("nvidia_smi")
    smi = smi[0] if isinstance(smi, list) and smi else {}
    if not devices:
        reason = env.get("torch_error") or "torch.cuda.is_available() is False"
        return [f"- GPU: none ({escape(reason)}): a CPU dry run; GPU stages were skipped"]
    d = devices[0]
    lines = [
        f"- GPU: {escape(d['name'])}, sm_{d['capability'].replace('.', '')}, {d['sm_count']} SMs, "
        f"{units.size(d['memory_bytes'])}, L2 {units.size(d.get('l2_bytes'))}; driver {escape(smi.get('driver_version', '?'))}"
    ]
    if smi:
        keys = ("clocks.sm", "clocks.max.sm", "clocks.mem", "clocks.max.mem", "compute_mode", "persistence_mode",
                "mig.mode.current", "ecc.mode.current", "power.limit", "temperature.gpu", "pstate")  # fmt: skip
        lines.append("- nvidia-smi: " + ", ".join(f"{k} {escape(smi[k])}" for k in keys if k in smi))
    return lines


def header(env: dict, seconds: float | None) -> list[str]:
    devices = env.get("devices") or []
    title = devices[0]["name"] if devices else "no GPU (CPU dry run)"
    packages = env.get("packages") or {}
    versions = ", ".join(f"{name} {packages[name]}" for name in ("torch", "triton", "cupy-cuda13x", "cupy-cuda12x",
                         "numba", "numba-cuda", "setuptools", "pytest-xdist") if packages.get(name))  # fmt: skip
    fingerprint = env.get("fingerprint") if isinstance(env.get("fingerprint"), dict) else {}
    lines = [
        f"# zhisuan devicecheck: {escape(title)}",
        "",
        f"- date: {escape(env.get('time', '?'))}; host {escape(env.get('host', '?'))}; "
        f"python {escape(env.get('python', '?'))}; CUDA (torch) {escape(env.get('cuda'))}; {escape(env.get('nvcc', ''))}",
        f"- versions: {escape(versions)}; zhisuan git {escape(fingerprint.get('git_sha'))}",
        *_gpu_lines(env),
        f"- command: {code('python -m zhisuan.bench.dev.devicecheck')} (the one GPU call; "
        f"{code('--print-command')} prints it whole)",
    ]
    if seconds is not None:
        lines.append(f"- took {seconds:.0f} s of the planned {plan.total_cap_s()} s")
    return lines


def build_section(records: list[dict]) -> list[str]:
    extensions = [r for r in records if r.get("kind") == "extension"]
    if not extensions:
        return [
            "## Build",
            "",
            bold("no extension record: the build stage did not finish") if records else "not run",
        ]
    bad = [r for r in extensions if r["status"] not in ("ok", "not-expected")]
    lines = ["## Build", ""]
    for r in bad:
        lines.append(bold(f"BUILD FAILED: {r['module']} is {r['status']}: {r.get('reason', '')}"))
        lines.append("")
    rows = [[r["module"], r["status"], r.get("how", ""), r.get("file", ""), ", ".join(r.get("gpu_targets") or []),
             r.get("reason", "")] for r in extensions]  # fmt: skip
    lines.append(markdown.table(["extension", "status", "built by", "loaded from", "GPU code", "why"], rows))
    return lines


def stage_section(records: list[dict]) -> list[str]:
    stages = [r for r in records if r.get("kind") == "stage"]
    rows = []
    for r in stages:
        last = (r.get("tail") or [""])[-1][:160]
        took = f"{r['seconds']:.0f} s" if r.get("seconds") is not None else units.DASH
        rows.append([r["stage"], f"{r['cap_s']} s", f"{r.get('allowed_s', r['cap_s']):.0f} s", took,
                     bold(r["status"]) if r["status"].startswith(("timeout", "failed")) else r["status"], last])  # fmt: skip
    return [
        "## Stages",
        "",
        markdown.table(["stage", "cap", "allowed", "took", "outcome", "last line"], rows),
    ]


def test_section(records: list[dict]) -> list[str]:
    lines = ["## Tests", ""]
    by_stage: dict[str, list[dict]] = {}
    for r in records:
        if r.get("kind") == "test":
            by_stage.setdefault(r["stage"], []).append(r)
    collected = {r["stage"]: r["nodeids"] for r in records if r.get("kind") == "collected"}
    skipped_stages = [r for r in records if r.get("kind") == "stage" and r["stage"].endswith("tests")
                      and r["status"].startswith("skipped")]  # fmt: skip
    for r in skipped_stages:
        lines.append(f"- {r['stage']}: {escape(r['status'])}")
    for stage in sorted(set(by_stage) | set(collected)):
        tests = by_stage.get(stage, [])
        counts = Counter(t["outcome"] for t in tests)
        not_run = [n for n in collected.get(stage, []) if n not in {t["nodeid"] for t in tests}]
        text = ", ".join(f"{counts[o]} {o}" for o in TEST_OUTCOMES if counts[o])
        lines.append(
            f"- {stage}: {text or 'no test finished'}"
            + (f", {bold(f'{len(not_run)} not run')}" if not_run else "")
        )
        for t in tests:
            if t["outcome"] in ("failed", "error"):
                tail = " / ".join(line.strip() for line in t["message"].strip().splitlines()[-3:])
                lines.append(f"  - {bold(t['outcome'].upper())} {code(t['nodeid'])}: {escape(tail[-400:])}")
        skips = Counter(t["message"].strip()[:160] for t in tests if t["outcome"] == "skipped")
        for reason, n in skips.most_common(5):
            lines.append(f"  - skipped ×{n}: {escape(reason)}")
        lines += [f"  - not run: {code(n)}" for n in not_run[:20]]
        slowest = sorted(tests, key=lambda t: -t["seconds"])[:3]
        if slowest:
            lines.append(
                "  - slowest: " + ", ".join(f"{code(t['nodeid'])} {t['seconds']:.0f} s" for t in slowest)
            )
    return lines if len(lines) > 2 else [*lines, "no test ran"]


def bench_section(results: list[Result], on_gpu: bool) -> list[str]:
    lines = ["## Benchmarks (results.jsonl)", ""]
    if not results:
        return [*lines, "no result"]
    if on_gpu:
        lines += ["### Targets (GPU issue, Part 3)", "", *targets.target_lines(results), ""]
    else:
        lines += ["CPU dry run at tiny sizes: the plumbing works; these numbers mean nothing.", ""]
    rows = []
    for r in results:
        err = f"{r.check['max_abs_err']:.2g} / {r.check['tolerance']:.2g}" if r.check else units.DASH
        extra = f" ({r.extra['sdpa_kernel']})" if "sdpa_kernel" in r.extra else ""
        rows.append([r.op, r.backend + extra, short_shape(r.op, r.shape), r.dtype, units.duration(r.median_s),
                     units.rate(r.flops_per_s, "FLOP/s"), units.percent(r.pct_peak), err,
                     r.status if r.status == "ok" else f"{r.status}: {r.error}"])  # fmt: skip
    columns = ["op", "backend", "shape", "dtype", "median", "achieved", "% peak", "error / tol", "status"]
    return [*lines, markdown.table(columns, rows)]


def validate_section(results: list[Result]) -> list[str]:
    lines = ["## Validate (validate.jsonl)", ""]
    if not results:
        return [*lines, "no record"]
    verdicts = Counter(r.extra.get("verdict", "?") for r in results)
    lines += [", ".join(f"{n} {v}" for v, n in verdicts.most_common()), ""]
    rows = [[r.extra.get("check", r.op), r.backend, r.dtype, r.extra.get("verdict", "?"),
             r.extra.get("value"), r.extra.get("unit", ""), r.extra.get("threshold"), r.extra.get("reason", "")]
            for r in results]  # fmt: skip
    return [
        *lines,
        markdown.table(
            ["check", "backend", "dtype", "verdict", "value", "unit", "threshold", "reason"], rows
        ),
    ]


def collective_section(results: list[Result]) -> list[str]:
    lines = ["## IPC all-reduce on one GPU (collective.jsonl)", ""]
    if not results:
        return [*lines, "no record"]
    rows = [[r.extra.get("impl", r.backend), r.dtype, units.size(r.shape.get("bytes")), r.extra.get("in_place"),
             units.duration(r.extra.get("time_s")), units.rate(r.extra.get("busbw"), "B/s"),
             r.check.get("wrong"), r.status] for r in results]  # fmt: skip
    return [
        *lines,
        markdown.table(["impl", "dtype", "size", "in place", "time", "busbw", "#wrong", "status"], rows),
    ]


def files_section(out: Path) -> list[str]:
    lines = [
        "## Files",
        "",
        "Here: " + ", ".join(code(p.name) for p in sorted(out.iterdir()) if p.is_file()),
        "",
    ]
    tarball = out / files.TARBALL
    if tarball.exists():
        with tarfile.open(tarball) as tar:
            members = [m.name for m in tar.getmembers() if m.isfile()]
        lines.append(
            f"{code(files.TARBALL)} holds {len(members)} files: " + ", ".join(code(m) for m in members)
        )
    return lines


def render(out: Path, seconds: float | None = None, *, short: bool = False) -> str:
    """The whole summary; short: what the call prints last (the device tool returns the end of
    the output), without the tables of results."""
    env_path = out / files.ENVIRONMENT
    env = json.loads(env_path.read_text()) if env_path.exists() else {}
    records = files.read_records(out / files.RECORDS)
    results = load_results(out / files.RESULTS)
    sections = [header(env, seconds), build_section(records), stage_section(records), test_section(records)]
    if short:
        if results and env.get("devices"):
            sections.append(["## Targets", "", *targets.target_lines(results)])
    else:
        sections += [
            bench_section(results, bool(env.get("devices"))),
            collective_section(load_results(out / files.COLLECTIVE)),
            validate_section(load_results(out / files.VALIDATE)),
            files_section(out),
        ]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"


def write(out: Path, seconds: float | None = None) -> str:
    text = render(out, seconds)
    (out / files.SUMMARY).write_text(text, encoding="utf-8")
    return text
