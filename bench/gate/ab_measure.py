"""`zhisuan ab`'s measurement: two versions of the code, timed round by round in alternation.

Each side runs in its own worker (zhisuan.bench.harness.zygote): a process that imported that
side's torch and zhisuan once and forks a fresh child per epoch. In an epoch both children make the
same seeded inputs (their fingerprints must agree), check every backend against the float64
reference, then time ROUNDS rounds: in each, every benchmark (in an order that rotates) gets one
block of samples on one side and then one on the other, the side that goes first alternating. A
round gives one paired log-ratio, log(median B block / median A block): both blocks ran within a
fraction of a second on the same inputs, so drift and a neighbour's load fall on both alike. With one
thread per side, both children of an epoch run on the same CPU, which changes from epoch to epoch
(worker.Child._pin): left to the scheduler, each side often kept its own core. A block is timed as
the harness times (checktime.time_block): an input negated before each sample, the block's last
output checked again; a side whose timed calls computed something else ends that benchmark, whose
times then count for nothing.

The children are kept across the rounds of an epoch (a round costs a few blocks, not a process
start) and replaced by fresh ones at the next epoch, so a process-level accident (where a buffer
landed, how threads were placed) does not stay on one side: the epoch, not the round, is the
unit of evidence (decision.from_epochs: the epochs' log-ratios, each its rounds' median).

Adaptive: after MIN_EPOCHS, a benchmark whose interval is narrower than the target precision, or
lies wholly beyond the threshold, stops; the rest go on until MAX_EPOCHS or the time budget. The
first epoch takes ROUNDS_PER_EPOCH rounds; the rest as many, or fewer if MAX_EPOCHS of them would
not fit in the time budget (AbPlan.fitted_rounds), since an epoch is also a degree of freedom.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from zhisuan.bench.core.results import Result, shape_label
from zhisuan.bench.gate import decision
from zhisuan.bench.gate.ab_sides import Side
from zhisuan.bench.harness.zygote import WorkerError, Zygote

SIDES = ("A", "B")
MIN_EPOCHS = 4
MAX_EPOCHS = 12
# Rounds per epoch: 12 when they fit. On the 2-core host an epoch's spread is its rounds' (a round's
# log-ratio spreads +-9%, and the epochs' medians spread as much as that explains), so rounds narrow
# the interval at a fraction of an epoch's cost (a fresh pair of processes): with 3, a true 5%
# slowdown of a 1.5 ms attention was caught in 14 of 20 trials (intervals +-4 to 8%); with 12, +-2
# to 3% (docs/benchmarks/gate.md). But an epoch also adds a degree of freedom, so a long suite,
# where 12 rounds leave time for only 4 epochs in --max-time, takes fewer (fitted_rounds).
ROUNDS_PER_EPOCH = 12
MIN_FITTED_ROUNDS = 3
BLOCK_S = 0.1  # timed seconds per block
MIN_BLOCK, MAX_BLOCK = 5, 200  # samples per block
WARMUP_S = 0.02  # before each block: the other side's block just ran
PREPARE_TIMEOUT_S = 1800.0
BLOCK_TIMEOUT_S = 600.0


@dataclass
class AbPlan:
    min_epochs: int = MIN_EPOCHS
    max_epochs: int = MAX_EPOCHS
    rounds: int | None = None  # per epoch; None: fitted_rounds
    block_s: float = BLOCK_S
    precision: float = 0.0  # stop a benchmark once the half-width of its interval is this narrow (0: never)
    threshold: float = 0.0  # ... or once its interval lies wholly beyond the threshold (0: never)
    alpha: float = decision.DEFAULT_ALPHA  # the interval is (1 - 2 alpha), as the gate's
    max_time_s: float | None = None
    flush: bool = True
    seed: int = 0

    def __post_init__(self):
        if not 2 <= self.min_epochs <= self.max_epochs:
            raise ValueError(
                f"need 2 <= min epochs <= max epochs, got {self.min_epochs} and {self.max_epochs}"
            )
        if self.rounds is not None and self.rounds < 1:
            raise ValueError(f"rounds per epoch must be at least 1, got {self.rounds}")

    def fitted_rounds(self, elapsed_s: float, epochs_done: int, setup_s: float, round_s: float) -> int:
        """Rounds for the epochs still to come: ROUNDS_PER_EPOCH, or fewer (not under
        MIN_FITTED_ROUNDS) if the remaining epochs up to max_epochs would not fit in max_time at
        that many. setup_s: an epoch's cost beside its rounds (processes, inputs, checks); round_s:
        one round's."""
        if self.rounds is not None:
            return self.rounds
        left = self.max_epochs - epochs_done
        if not self.max_time_s or left <= 0 or round_s <= 0:
            return ROUNDS_PER_EPOCH
        per_epoch = (self.max_time_s - elapsed_s) / left
        return int(min(ROUNDS_PER_EPOCH, max(MIN_FITTED_ROUNDS, (per_epoch - setup_s) // round_s)))


@dataclass
class Bench:
    """One benchmark (op, shape, dtype, backend) on both sides."""

    case: dict  # op, shape, dtype
    backend: str
    results: dict = field(default_factory=dict)  # side -> Result of the first epoch's check
    unavailable: dict = field(default_factory=dict)  # side -> why it cannot run there
    samples: dict = field(default_factory=lambda: {s: [] for s in SIDES})
    blocks: dict = field(default_factory=lambda: {s: [] for s in SIDES})
    epochs: list[list[float]] = field(default_factory=list)  # per epoch, each round's log(B/A)
    inputs: dict = field(default_factory=dict)  # side -> fingerprint of the inputs it made
    block_size: int = MIN_BLOCK
    stop: str | None = None
    problem: str | None = None  # why it cannot be compared (checks failed, inputs differ)

    @property
    def label(self) -> str:
        c = self.case
        return f"{c['op']} {self.backend} {shape_label(c['shape'])} {c['dtype']}"

    @property
    def timed(self) -> bool:
        return (
            not self.unavailable
            and self.problem is None
            and all(self.results[s].status == "ok" for s in SIDES)
        )

    def evidence(self) -> decision.Evidence:
        """The epochs' evidence: each its rounds' median, with an error no smaller than the rounds
        allow (decision.from_epochs)."""
        return decision.from_epochs(self.epochs)

    def settled(self, plan: AbPlan) -> str | None:
        """Why this benchmark needs no more epochs, or None: its (1 - 2 alpha) interval is narrower
        than the precision target, or lies wholly beyond the threshold (no epoch could undo that)."""
        a = decision.judge(self.evidence(), threshold=plan.threshold, alpha=plan.alpha)
        if not a.ci_low > 0:
            return None
        if plan.precision and math.sqrt(a.ci_high / a.ci_low) - 1 <= plan.precision:
            return "precision"
        bound = 1 + plan.threshold
        if plan.threshold and (a.ci_low > bound or a.ci_high < 1 / bound):
            return "decided"
        return None


def measure(sides: list[Side], cases: list[dict], device: str, plan: AbPlan,
            on_progress: Callable[[str], None] = lambda text: None) -> list[Bench]:  # fmt: skip
    """Time every (case, backend) on both sides; each Bench holds its samples and paired ratios."""
    benches = [Bench({k: c[k] for k in ("op", "shape", "dtype")}, b) for c in cases for b in c["backends"]]
    zygotes = {}
    try:
        for side in sides:
            on_progress(f"starting side {side.label}: {side.description}")
            zygotes[side.label] = Zygote(
                side.python, side.env, label=f"side {side.label} ({side.description})"
            )
            _check_import(side, zygotes[side.label].info)
        start = time.monotonic()
        longest_epoch = 0.0
        rounds = plan.rounds or ROUNDS_PER_EPOCH
        for epoch in range(plan.max_epochs):
            active = [b for b in benches if b.stop is None and (epoch == 0 or b.timed)]
            elapsed = time.monotonic() - start
            if not active or (epoch >= 2 and plan.max_time_s and elapsed + longest_epoch > plan.max_time_s):
                break
            on_progress(
                f"epoch {epoch + 1} of at most {plan.max_epochs}: {len(active)} benchmark(s), {rounds} rounds"
            )
            began = time.monotonic()
            setup_s = _epoch(zygotes, active, device, plan, epoch, rounds)
            took = time.monotonic() - began
            if epoch == 0:  # the first epoch's cost fits the rounds of the rest
                round_s = (took - setup_s) / rounds
                rounds = plan.fitted_rounds(time.monotonic() - start, 1, setup_s, round_s)
                longest_epoch = setup_s + rounds * round_s  # what the epochs to come should take
            else:
                longest_epoch = max(longest_epoch, took)
            for bench in active:
                if bench.timed and epoch + 1 >= plan.min_epochs:
                    bench.stop = bench.settled(plan)
        for bench in benches:
            if bench.timed and bench.stop is None:
                bench.stop = "max-epochs" if len(bench.epochs) >= plan.max_epochs else "time-budget"
    finally:
        for zygote in zygotes.values():
            zygote.close()
    return benches


def _check_import(side: Side, info: dict) -> None:
    """A source tree's side must import that tree's zhisuan, not whatever else is installed, and
    that zhisuan must have what this version's worker calls (worker.USES)."""
    from pathlib import Path

    if info.get("missing"):
        raise WorkerError(
            f"side {side.label} ({side.description}) lacks what this zhisuan ab times with: "
            f"{', '.join(info['missing'])}. Both sides are timed by the orchestrator's worker, so a "
            "side must be a revision that has these; or run ab from that side's own checkout"
        )
    if side.tree is not None and Path(info["zhisuan"]).resolve() != side.tree.resolve():
        raise WorkerError(
            f"side {side.label} imported zhisuan from {info['zhisuan']}, not from {side.tree}: "
            "is another zhisuan first on its path?"
        )


def _epoch(zygotes: dict, active: list[Bench], device: str, plan: AbPlan, epoch: int, rounds: int) -> float:
    """One epoch of `rounds` rounds on a fresh pair of children; the seconds it took before its
    first round (forks, inputs, checks)."""
    from zhisuan.bench.harness.rounds import rotated

    began = time.monotonic()
    children = {label: zygote.fork() for label, zygote in zygotes.items()}
    try:
        cases = _cases(active)
        request = {"cmd": "prepare", "device": device, "cases": cases, "seed": plan.seed, "flush": plan.flush,
                   "epoch": epoch}  # fmt: skip
        for child in children.values():
            child.send(request)  # both sides prepare at once
        prepared = {
            label: child.receive(PREPARE_TIMEOUT_S)["benchmarks"] for label, child in children.items()
        }
        ids = _record_checks(active, prepared, first=epoch == 0)
        setup_s = time.monotonic() - began
        timed = [b for b in active if b.timed]
        ratios = {id(b): [] for b in timed}
        for number in range(rounds):
            turn = epoch * rounds + number  # even rounds: each epoch balanced; odd: epoch by epoch
            for position, bench in enumerate(b for b in rotated(timed, turn) if b.problem is None):
                order = SIDES if (turn + position) % 2 == 0 else SIDES[::-1]
                medians = {}
                for label in order:
                    began = time.monotonic()
                    reply = children[label].request(
                        {"cmd": "time", "id": ids[id(bench)][label], "samples": bench.block_size,
                         "warmup_s": WARMUP_S}, BLOCK_TIMEOUT_S,
                    )  # fmt: skip
                    if "failed" in reply:  # a timed call computed something else: nothing it timed counts
                        bench.problem = f"side {label} {reply['failed']} while timed: {reply['error']}"
                        break
                    samples = reply["samples_s"]
                    bench.samples[label] += samples
                    bench.blocks[label].append(len(samples))
                    medians[label] = float(np.median(samples))
                    per_sample = (time.monotonic() - began - WARMUP_S) / max(len(samples), 1)
                if bench.problem:
                    continue
                ratios[id(bench)].append(math.log(medians["B"] / medians["A"]))
                bench.block_size = int(
                    min(MAX_BLOCK, max(MIN_BLOCK, math.ceil(plan.block_s / max(per_sample, 1e-6))))
                )
        for bench in timed:
            if bench.problem is None:
                bench.epochs.append(ratios[id(bench)])
    finally:
        for child in children.values():
            child.close()
    return setup_s


def _case_key(case: dict) -> str:
    return f"{case['op']}|{shape_label(case['shape'])}|{case['dtype']}"


def _cases(active: list[Bench]) -> list[dict]:
    """The active benchmarks grouped back into cases (one set of inputs per op, shape, dtype)."""
    cases: dict[str, dict] = {}
    for bench in active:
        cases.setdefault(_case_key(bench.case), {**bench.case, "backends": []})["backends"].append(
            bench.backend
        )
    return list(cases.values())


def _record_checks(active: list[Bench], prepared: dict, first: bool) -> dict:
    """Each benchmark's worker id per side; in the first epoch, also its check (or why it cannot run).

    The two sides must have made identical inputs: otherwise their times measure different work.
    """
    by_key = {(_case_key(b.case), b.backend): b for b in active}
    order = [by_key[(_case_key(c), name)] for c in _cases(active) for name in c["backends"]]
    ids: dict[int, dict] = {id(b): {} for b in active}
    for label, entries in prepared.items():
        for bench, entry in zip(order, entries, strict=True):
            ids[id(bench)][label] = entry["id"]
            bench.inputs[label] = entry["inputs"]
            if "unavailable" in entry:
                bench.unavailable[label] = entry["unavailable"]
            elif first:
                bench.results[label] = Result.from_dict(entry["result"])
    for bench in active:
        if len(set(bench.inputs.values())) > 1 and bench.problem is None:
            bench.problem = "the two versions made different inputs (their workloads differ): their times measure different work"
        if first and not bench.unavailable and bench.problem is None:
            failed = [label for label in SIDES if bench.results[label].status != "ok"]
            if failed:
                r = bench.results[failed[0]]
                bench.problem = f"side {failed[0]} {r.status}: {r.error or 'no reason given'}"
    return ids
