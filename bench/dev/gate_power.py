"""The gate's decision rule on synthetic timings whose truth is known: power and false alarms.

    python -m zhisuan.bench.dev.gate_power --out docs/benchmarks/gate.md

Synthetic, by construction: the noise model below, not this machine (docs/benchmarks/gate.md
has the real-run figures beside it; this script rewrites only its own section of that file).
Every trial goes through zhisuan.bench.gate.decision, the exact rule `zhisuan compare` and
`zhisuan ab` apply, vectorised over trials. Noise model, in log space (relative sd):
- a round (a fresh process) lands ROUND_SD apart from the next: placement, clocks;
- a run as a whole lands HOST_SD apart (the host's state while it ran): no round sees it;
- samples inside a round spread less and are summarised by the round's median, so they are not
  drawn one by one, except for the "samples as units" case: the earlier rule's failure mode.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import scipy

from zhisuan.bench.core import markdown
from zhisuan.bench.dev.sections import replace_section
from zhisuan.bench.gate import decision

TRIALS = 2000
ROUND_SD = 0.02
HOST_SD = 0.03
BENCHMARKS = 12  # per comparison, for the learned floor
AB_EPOCH_SD = 0.01
AB_THRESHOLD = 0.03
CHANGES = (1.0, 1.03, 1.05, 1.10, 1.30, 1 / 1.30)


def change(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.0f}%" if abs(ratio - 1) > 1e-12 else "none"


def rates(a: decision.Assessment) -> dict:
    return {v: float(np.mean(a.verdict == v)) for v in decision.VERDICTS}


def two_runs(rng, ratio: float, trials: int, rounds: int) -> decision.Assessment:
    base = np.exp(ROUND_SD * rng.standard_normal((trials, rounds)))
    cur = ratio * np.exp(ROUND_SD * rng.standard_normal((trials, rounds)))
    return decision.assess(base * 1e-3, cur * 1e-3)


def comparisons(rng, ratio: float, trials: int, learn_floor: bool) -> tuple[float, float]:
    """Whole comparisons of BENCHMARKS benchmarks, 5 rounds each, each run shifted as a whole by
    HOST_SD; the first benchmark is `ratio` slower. (share of comparisons with any false alarm,
    share in which the slower one is flagged)"""
    false_alarms = flagged = 0
    for _ in range(trials):
        host = np.exp(HOST_SD * rng.standard_normal(2))
        evidence = []
        for k in range(BENCHMARKS):
            base = host[0] * np.exp(ROUND_SD * rng.standard_normal(5))
            cur = host[1] * (ratio if k == 0 else 1.0) * np.exp(ROUND_SD * rng.standard_normal(5))
            evidence.append(decision.from_units(base, cur))
        shift = decision.common_shift(evidence) if learn_floor else None
        judged = evidence if shift is None else [e.relative_to(shift, "learned") for e in evidence]
        verdicts = [str(decision.judge(e).verdict) for e in judged]
        false_alarms += any(v == decision.REGRESSED for v in verdicts[1:])
        flagged += verdicts[0] == decision.REGRESSED
    return false_alarms / trials, flagged / trials


def samples_as_units(rng, trials: int) -> float:
    """The earlier rule's unit: the samples of one process per run; processes land 5% apart."""
    shift = np.exp(0.05 * rng.standard_normal((2, trials, 1)))
    b = shift[0] * np.exp(0.01 * rng.standard_normal((trials, 30)))
    c = shift[1] * np.exp(0.01 * rng.standard_normal((trials, 30)))
    return float(np.mean(decision.assess(b, c).verdict == decision.REGRESSED))


def ab_epochs(rng, ratio: float, trials: int, epochs: int) -> decision.Assessment:
    ratios = math.log(ratio) + AB_EPOCH_SD * rng.standard_normal((trials, epochs))
    return decision.judge(decision.from_pairs(ratios), threshold=AB_THRESHOLD)


def report(trials: int, command: str) -> str:
    rng = np.random.default_rng(2026)
    start = time.perf_counter()
    rows = []
    for rounds in (3, 5, 10):
        for ratio in CHANGES:
            r = rates(two_runs(rng, ratio, trials, rounds))
            rows.append([rounds, change(ratio), *(f"{r[v]:.1%}" for v in decision.VERDICTS)])
    compare_table = markdown.table(["rounds per run", "true change", *decision.VERDICTS], rows, [True] * 6)
    floor_rows = []
    for learn in (False, True):
        for ratio in (1.10, 1.30):
            fa, hit = comparisons(rng, ratio, max(trials // 10, 50), learn)
            floor_rows.append(["learned" if learn else "none", change(ratio), f"{fa:.1%}", f"{hit:.1%}"])
    floor_table = markdown.table(
        ["noise floor", "one benchmark", "comparisons with a false alarm", "slower one flagged"], floor_rows,
        [False, True, True, True],
    )  # fmt: skip
    ab_rows = []
    for epochs in (4, 8, 12):
        for ratio in (1.0, 1.03, 1.05, 1.10):
            r = rates(ab_epochs(rng, ratio, trials, epochs))
            ab_rows.append([epochs, change(ratio), *(f"{r[v]:.1%}" for v in decision.VERDICTS)])
    ab_table = markdown.table(["epochs", "true change", *decision.VERDICTS], ab_rows, [True] * 6)
    old = samples_as_units(rng, trials)
    wall = time.perf_counter() - start
    return "\n".join([
        "## Synthetic: the rule on a noise model whose truth is known",
        "",
        f"Computed {datetime.now(timezone.utc):%Y-%m-%d} with Python {platform.python_version()}, numpy "
        f"{np.__version__}, scipy {scipy.__version__} ({wall:.0f} s). Command: `{command}`. These figures "
        "come from the model, not from this machine: they show what the rule does when its assumptions hold.",
        "",
        f"Model: each round (a fresh process) lands {ROUND_SD:.0%} (relative sd) apart; a run as a whole lands "
        f"{HOST_SD:.0%} apart where stated (the host's state, which no round sees). Defaults of `zhisuan "
        f"compare`: threshold {decision.DEFAULT_THRESHOLD:.0%}, alpha {decision.DEFAULT_ALPHA}; {trials} trials a row.",
        "",
        "**Two runs of one benchmark** (rounds only, no host shift):",
        "",
        compare_table,
        "",
        f"**Whole comparisons of {BENCHMARKS} benchmarks, 5 rounds a run, runs shifted as a whole by "
        f"{HOST_SD:.0%}**: judged against the shift the benchmarks share, with their spread around it as the "
        "floor (\"learned\"; compare's rule), the host's shift neither cries wolf nor hides the slower one:",
        "",
        floor_table,
        "",
        f"**The earlier rule's unit**: the 30 samples of one process per run, processes {5}% apart, samples "
        f"1% apart: identical code flagged as regressed in {old:.0%} of trials (the rounds above: none).",
        "",
        f"**`zhisuan ab`**: paired epochs, each epoch's mean log-ratio {AB_EPOCH_SD:.0%} (sd) apart, threshold "
        f"{AB_THRESHOLD:.0%} (ab's default):",
        "",
        ab_table,
        "",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=TRIALS, help=f"trials per case (default {TRIALS})")
    parser.add_argument(
        "--out", help="rewrite the synthetic section of this Markdown file (default: print it)"
    )
    args = parser.parse_args(argv)
    command = "python -m zhisuan.bench.dev.gate_power" + (
        f" --trials {args.trials}" if args.trials != TRIALS else ""
    )
    command += f" --out {args.out}" if args.out else ""
    text = report(args.trials, command)
    if args.out:
        replace_section(Path(args.out), "synthetic", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
