"""The gate on real runs of this machine: A/A false alarms and planted slowdowns, plain flow and ab.

    python -m zhisuan.bench.dev.gate_realruns collect --folder runs/ --budget 1800
    python -m zhisuan.bench.dev.gate_realruns report --folder runs/ --out docs/benchmarks/gate.md

collect: trial after trial until the wall-clock budget ends (a trial begun finishes), each:
- plain flow, as CI runs it: three `zhisuan run` processes one after the other (baseline, the same
  code again, and the code with a planted slowdown), then `zhisuan compare` of baseline vs same
  (A/A: must exit 0) and of baseline vs slower (must exit 1). The slowdown is the test-only
  `testwork` matmul backend (tests/plugins) taking 5%, 10% or 30% longer, in turn;
- `zhisuan ab` of two commits of a throw-away copy of this repository's bench/ and kernels/:
  the same code (A/A), and the torch matmul (or, with --ab-op attention, the torch attention)
  taking 5%, 10% or 30% longer, in turn (slower_return says how).
Each slowdown costs that share of the planted call's own time, and the report shows what each
flow measured it as (so a claim about "5%" rests on a plant measured at 5%).
Every result file and exit code is kept in the folder (trials.jsonl), so the report can be redone.
Every process runs with OMP_NUM_THREADS=1: on a shared host, with both cores' threads in one parallel region, a
neighbour that preempts one of them stalls the other at the barrier for a scheduler slice, and a
256^3 matmul measured 32 ms instead of 0.9 ms (single-threaded), hiding the work it does.
report: the rates, with the device, date, versions and commands, into the "real-runs" section.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from zhisuan.bench.dev.sections import replace_section

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "tests" / "plugins"
SLOWDOWNS = (0.30, 0.10, 0.05)
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # see the module's docstring
RUN_ARGS = ["matmul", "--shape", "128", "--shape", "256", "--backend", "torch,cpp,testwork"]


@dataclass(frozen=True)
class AbTarget:
    """What `zhisuan ab` times, and where the slowdown is planted: `anchor`, a `return` line of
    `source` (a torch backend of the copy), becomes slower_return(anchor, extra)."""

    args: tuple[str, ...]
    source: str
    anchor: str


AB_TARGETS = {
    "matmul": AbTarget(
        ("matmul", "--shape", "256", "--backend", "torch", "--no-build"),
        "kernels/matmul/torch_backend.py",
        "    return torch.matmul(a, b)\n",
    ),
    "attention": AbTarget(
        ("attention", "--shape", "1x4x256x64", "--causal", "no", "--backend", "torch", "--no-build"),
        "kernels/attention/torch_backend.py",
        "        return F.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=gqa)\n",
    ),
}


def slower_return(anchor: str, extra: float) -> str:
    """`anchor` (a `return EXPR` line) made `extra` slower, exactly: EXPR is timed, then the core is
    kept busy (a spin on the clock) for `extra` times as long as it took. So the plant costs that
    share of the call's own time whatever the call's size. An extra call on `extra` of the rows,
    the plant before, also cost its fixed overhead: measured by ab, "5%" cost 8-21%."""
    indent = anchor[: len(anchor) - len(anchor.lstrip())]
    if not anchor.strip().startswith("return "):
        raise ValueError(f"a slowdown is planted at a return line, got {anchor!r}")
    body = [
        f"import time  # planted: {extra:.0%} slower (a spin for {extra:.0%} of the call's own time)",
        "start = time.perf_counter()",
        f"out = {anchor.strip().removeprefix('return ')}",
        f"until = time.perf_counter() + {extra} * (time.perf_counter() - start)",
        "while time.perf_counter() < until:",
        "    pass",
        "return out",
    ]
    return "".join(f"{indent}{line}\n" for line in body)


def zhisuan(*args: str, env: dict | None = None) -> tuple[int, str, float]:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "zhisuan.bench", *args], env=env, capture_output=True, text=True, timeout=1800
    )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start


def run_env(extra: float) -> dict:
    path = os.pathsep.join(filter(None, [str(PLUGINS), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "ZHISUAN_TESTWORK_EXTRA": str(extra), **ONE_THREAD}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "gate", "GIT_AUTHOR_EMAIL": "gate@zhisuan.dev",
           "GIT_COMMITTER_NAME": "gate", "GIT_COMMITTER_EMAIL": "gate@zhisuan.dev"}  # fmt: skip
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()  # fmt: skip


def planted_repo(folder: Path) -> dict[str, str]:
    """A git repository of bench/ and kernels/: one commit per version; {name: sha}."""
    repo = folder / "repo"
    if repo.exists():
        shutil.rmtree(repo)
    for name in ("bench", "kernels"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    shas = {"base": git(repo, "rev-parse", "HEAD")}
    git(repo, "commit", "-q", "--allow-empty", "-m", "same code")
    shas["same"] = git(repo, "rev-parse", "HEAD")
    for op, target in AB_TARGETS.items():
        source = repo / target.source
        text = source.read_text()
        if target.anchor not in text:
            raise SystemExit(
                f"{target.source}: the line the slowdown is planted at is gone: {target.anchor!r}"
            )
        for extra in SLOWDOWNS:
            git(repo, "checkout", "-q", shas["base"])
            source.write_text(text.replace(target.anchor, slower_return(target.anchor, extra)))
            git(repo, "commit", "-qam", f"{op} {extra:.0%} slower")
            shas[f"{op}-{extra:.2f}"] = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", shas["base"])
    return shas


def collect(folder: Path, budget_s: float, only: str | None, ab_op: str = "matmul",
            slowdowns: tuple[float, ...] = SLOWDOWNS) -> None:  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    shas = planted_repo(folder)
    log = folder / "trials.jsonl"
    began, trial = time.monotonic(), sum(1 for _ in log.open()) // 2 if log.exists() else 0
    while time.monotonic() - began < budget_s:
        extra = slowdowns[trial % len(slowdowns)]
        records = []
        if only in (None, "plain"):
            files = {name: folder / f"t{trial:02d}-{name}.jsonl" for name in ("base", "same", "slower")}
            seconds = []
            for name, work in (("base", 0.0), ("same", 0.0), ("slower", extra)):
                code, out, took = zhisuan("run", *RUN_ARGS, "--json", str(files[name]), env=run_env(work))
                seconds.append(took)
                if code:
                    raise SystemExit(f"zhisuan run failed:\n{out}")
            for kind, other in (("A/A", "same"), ("slower", "slower")):
                code, out, took = zhisuan("compare", str(files["base"]), str(files[other]))
                records.append({"flow": "plain", "trial": trial, "kind": kind, "extra": extra if kind != "A/A" else 0,
                                "exit": code, "run_s": seconds, "summary": out.strip().splitlines()[-1]})  # fmt: skip
        if only in (None, "ab"):
            for kind, sha in (("A/A", shas["same"]), ("slower", shas[f"{ab_op}-{extra:.2f}"])):
                out_file = folder / f"t{trial:02d}-ab-{'aa' if kind == 'A/A' else 'slower'}.jsonl"
                code, out, took = zhisuan("ab", shas["base"], sha, *AB_TARGETS[ab_op].args, "--repo", str(folder / "repo"),
                                          "--workdir", str(folder / "work"), "--json", str(out_file),
                                          env={**os.environ, **ONE_THREAD})  # fmt: skip
                records.append({"flow": "ab", "op": ab_op, "trial": trial, "kind": kind, "extra": extra if kind != "A/A" else 0,
                                "exit": code, "wall_s": took, "summary": out.strip().splitlines()[-1]})  # fmt: skip
        with log.open("a") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
        print(f"trial {trial}: " + ", ".join(f"{r['flow']} {r['kind']} {r['extra']:.0%} exit {r['exit']}" for r in records),
              flush=True)  # fmt: skip
        trial += 1


def ab_judged(path: Path) -> tuple[int, list[float]]:
    """An ab result file judged by the rule as it is now: 1 if any benchmark is judged regressed,
    else 0; and the ratio (current / baseline) ab measured for each benchmark."""
    from zhisuan.bench.gate import ab_command, decision

    code, ratios = 0, []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        epochs = record["extra"]["ab"]["log_ratios_by_epoch"]
        a = decision.judge(decision.from_epochs(epochs), threshold=ab_command.DEFAULT_THRESHOLD)
        ratios.append(float(a.ratio))
        code = max(code, int(a.verdict == decision.REGRESSED))
    return code, ratios


def rate_rows(records: list[dict], flow: str, op: str = "matmul") -> list[list]:
    """Per true change: trials, how many exited as wanted, the exit codes, and (plain flow) the
    verdicts of the two testwork benchmarks, the ones the slowdown is planted in; and the change
    each flow measured where it was planted (median, range). ab: trials of `op` (folders from
    before --ab-op hold matmul trials only)."""
    import numpy as np

    rows = []
    for kind, extra, want in [("A/A", 0, 0)] + [("slower", e, 1) for e in sorted(SLOWDOWNS)]:
        hits = [r for r in records if r["flow"] == flow and r["kind"] == kind and r["extra"] == extra
                and (flow != "ab" or r.get("op", "matmul") == op)]  # fmt: skip
        if not hits:
            continue
        codes = [r["exit"] for r in hits]
        label = "none (A/A)" if kind == "A/A" else f"+{extra:.0%}"
        expected = sum(c == want for c in codes)
        verdicts = [v for r in hits for v in r.get("verdicts", [])]
        seen = ", ".join(f"{v} {verdicts.count(v)}" for v in sorted(set(verdicts)))
        measured = [x - 1 for r in hits for x in r.get("measured", [])]
        cost = "-"
        if measured:
            cost = f"{np.median(measured):+.1%} ({min(measured):+.1%} to {max(measured):+.1%})"
        rows.append([label, len(hits), f"exit {want}", f"{expected} of {len(hits)}",
                     ", ".join(f"{c}: {codes.count(c)}" for c in sorted(set(codes))), cost, seen])  # fmt: skip
    return rows


def load_trials(folder: Path) -> list[dict]:
    """A folder's trials, judged again by the rule as it is now (compare's, in this process)."""
    from zhisuan.bench.core.precision import sampling_of
    from zhisuan.bench.core.result_files import read_results
    from zhisuan.bench.gate import comparison

    records = [json.loads(line) for line in (folder / "trials.jsonl").read_text().splitlines()]
    for r in records:
        if r["flow"] == "plain":
            other = "same" if r["kind"] == "A/A" else "slower"
            base, current = (
                read_results(folder / f"t{r['trial']:02d}-{name}.jsonl") for name in ("base", other)
            )
            gate = comparison.run_gate(base, current)
            r["exit"] = gate.exit_code
            r["verdicts"] = [p.verdict for p in gate.pairs if p.current.backend == "testwork"]
            r["measured"] = [p.ratio for p in gate.pairs if p.current.backend == "testwork"]
            r["load"] = [h["load_1m"] for x in base + current for h in sampling_of(x).get("host") or []]
        else:  # ab's verdicts again from the epochs it kept (its stopping rule stays as it ran)
            name = "aa" if r["kind"] == "A/A" else "slower"
            r["exit"], r["measured"] = ab_judged(folder / f"t{r['trial']:02d}-ab-{name}.jsonl")
    return records


def all_pairs(folder: Path) -> dict[str, tuple[int, int]]:
    """Plain flow, beyond the trials' own pairs: every pair of the folder's runs of the same code
    (base and same of every trial: minutes to an hour apart), and every (same-code run, slower run)
    pair of each slowdown, judged by compare's rule as it is now. {label: (as wanted, pairs)}."""
    import itertools

    from zhisuan.bench.core.result_files import read_results
    from zhisuan.bench.gate import comparison

    records = [json.loads(line) for line in (folder / "trials.jsonl").read_text().splitlines()]
    extra = {r["trial"]: r["extra"] for r in records if r["flow"] == "plain" and r["kind"] == "slower"}
    runs = {t: {name: read_results(folder / f"t{t:02d}-{name}.jsonl") for name in ("base", "same", "slower")}
            for t in extra}  # fmt: skip
    clean = [runs[t][name] for t in sorted(runs) for name in ("base", "same")]
    tally = {
        "none (A/A)": [comparison.run_gate(a, b).exit_code == 0 for a, b in itertools.combinations(clean, 2)]
    }
    for size in sorted(set(extra.values())):
        tally[f"+{size:.0%}"] = [comparison.run_gate(a, runs[t]["slower"]).exit_code == 1
                                 for t in extra if extra[t] == size for a in clean]  # fmt: skip
    return {label: (sum(hits), len(hits)) for label, hits in tally.items() if hits}


def report(folders: list[Path], command: str) -> str:
    import numpy as np
    import scipy
    import torch

    from zhisuan.bench.core import chips, markdown

    records = [r for folder in folders for r in load_trials(folder)]
    plain_s = [sum(r["run_s"]) / 3 for r in records if r["flow"] == "plain" and r["kind"] == "A/A"]
    stamp = datetime.fromtimestamp(max((f / "trials.jsonl").stat().st_mtime for f in folders), timezone.utc)
    head = ["true change", "trials", "wanted", "as wanted", "exit codes seen", "change measured",
            "testwork verdicts"]  # fmt: skip
    align = [False, True, False, True, False, True, False]
    loads = [x for r in records for x in r.get("load", [])]
    load = (f": 1-minute load average {min(loads):.1f} to {max(loads):.1f} in the rounds of the plain flow, "
            f"median {np.median(loads):.1f}") if loads else ""  # fmt: skip
    lines = [
        "## Real runs of this machine",
        "",
        f"Measured {stamp:%Y-%m-%d} on {chips.detect('cpu').name} ({platform.machine()}, {chips.cpu_cores()} "
        f"cores, shared with other sessions{load}), Python "
        f"{platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, scipy {scipy.__version__}. "
        "Commands: `python -m zhisuan.bench.dev.gate_realruns collect --folder F [--only ab] [--ab-op attention]` (one trial after another, for a time "
        f"budget) then `{command}`. One thread (OMP_NUM_THREADS=1) "
        "per process: with two, a neighbour that preempts one thread stalls the other at the barrier for a "
        "scheduler slice (a 256^3 matmul took 32 ms instead of 0.9 ms), which hides the work a kernel does.",
        "",
    ]
    if plain_s:
        lines += [
            f"**Plain flow** (`zhisuan run --json base.jsonl`, again for `same.jsonl` and `slower.jsonl`, each its own "
            f"process with default settings, then `zhisuan compare base.jsonl same.jsonl` / `... slower.jsonl`, "
            f"default threshold 5%): `zhisuan run {' '.join(RUN_ARGS)}` (6 benchmarks), the slowdown planted in the "
            f"test-only `testwork` backend (tests/plugins), which spins for that share of its matmul's own time. "
            f"A run took {np.median(plain_s):.0f} s (median). Change measured: what compare measured for the two "
            "testwork benchmarks (around the shift all six shared), median and range over the trials.",
            "",
            markdown.table(head, rate_rows(records, "plain"), align),
            "",
        ]
    pairs: dict[str, list[int]] = {}
    for folder in folders:
        for label, (wanted, total) in all_pairs(folder).items():
            pairs.setdefault(label, [0, 0])
            pairs[label][0] += wanted
            pairs[label][1] += total
    if pairs:
        lines += [
            "Every pair, not only each trial's own: each same-code run (base and same of every trial) against "
            "every other, minutes to an hour apart, and against every slower run. The pairs share runs, so "
            "they are not independent trials; they show how far apart in time the rule still holds.",
            "",
            markdown.table(
                ["true change", "pairs", "as wanted (A/A: exit 0; slower: exit 1)"],
                [
                    [label, total, f"{wanted} ({wanted / total:.0%})"]
                    for label, (wanted, total) in pairs.items()
                ],
                [False, True, True],
            ),  # fmt: skip
            "",
        ]
    for op, target in AB_TARGETS.items():
        seconds = [r["wall_s"] for r in records if r["flow"] == "ab" and r.get("op", "matmul") == op]
        if not seconds:
            continue
        lines += [
            f"**`zhisuan ab`, {op}**, two commits of a copy of bench/ and kernels/ (default settings: threshold "
            f"3%, 4-12 epochs of up to 12 rounds): `zhisuan ab BASE CURRENT {' '.join(target.args)}`; CURRENT is the same code (A/A) "
            f"or the torch {op} made that much slower (`--ab-op {op}`: a spin for that share of the call's own time). A trial took "
            f"{np.median(seconds):.0f} s (median, {max(seconds):.0f} s longest). Change measured: ab's ratio.",
            "",
            markdown.table(head[:6], [row[:6] for row in rate_rows(records, "ab", op)], align[:6]),
            "",
        ]
    return "\n".join(lines)


def _slowdowns(text: str) -> tuple[float, ...]:
    chosen = tuple(float(x) for x in text.split(","))
    if not chosen or any(x not in SLOWDOWNS for x in chosen):
        raise argparse.ArgumentTypeError(
            f"slowdowns are some of {', '.join(map(str, SLOWDOWNS))}, got {text}"
        )
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="step", required=True)
    c = sub.add_parser("collect", help="run trials until the budget ends")
    c.add_argument("--folder", required=True)
    c.add_argument("--budget", type=float, default=1800.0, help="wall-clock seconds (default %(default)s)")
    c.add_argument("--only", choices=("plain", "ab"), help="one flow only")
    c.add_argument(
        "--ab-op", choices=tuple(AB_TARGETS), default="matmul", help="what ab times (default matmul)"
    )
    c.add_argument(
        "--slowdowns", type=_slowdowns, default=SLOWDOWNS,
        help="the planted slowdowns, taken in turn (default %(default)s; each of them)",
    )  # fmt: skip
    r = sub.add_parser("report", help="the rates, as Markdown")
    r.add_argument("--folder", action="append", required=True, help="a collect folder; repeatable")
    r.add_argument("--out", help="rewrite the real-runs section of this Markdown file (default: print it)")
    args = parser.parse_args(argv)
    if args.step == "collect":
        collect(Path(args.folder), args.budget, args.only, args.ab_op, args.slowdowns)
        return 0
    command = "python -m zhisuan.bench.dev.gate_realruns report " + " ".join(
        f"--folder {f}" for f in args.folder
    )
    text = report([Path(f) for f in args.folder], command + (f" --out {args.out}" if args.out else ""))
    if args.out:
        replace_section(Path(args.out), "real-runs", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
