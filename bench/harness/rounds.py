"""`zhisuan run` in rounds: each round a fresh process that checks and times every benchmark once.

Whole processes shift (memory placement, thread placement, a neighbour's spell of load) by more than
the samples inside one process spread, so a run is made of rounds and the round is the unit of
evidence (zhisuan.bench.core.precision). Each round forks a fresh child from a worker that imported
torch once (zygote.py, worker.py) and runs the harness's own check-then-time (runner.execute) over
the benchmarks still being sampled, in an order that rotates from round to round: case i of n
starts round r at position (i - r) mod n, and so do the backends of a case, so no benchmark always
runs first (after the cache-cold start) or last. With one thread, round r runs on CPU r mod n
(worker.Child._pin), so a run is not timed on whichever core its rounds happened to stay on.

Adaptive: after each round a benchmark whose time is pinned down to the target precision (the
relative half-width of the 95% interval of its round medians; default half the gate's 5% threshold)
leaves, once it has MIN_ROUNDS rounds; the others go on until MAX_ROUNDS or the time budget. Each
result records why it stopped and the precision it reached (Result.extra["sampling"]), so the gate
can say when a run cannot decide. A benchmark that fails its check or raises in any round stops
there, and its result is that failure: never a timing.

`in_process=True` runs the rounds inside this process (the Python API, and backends registered in
the calling process): rounds still spread over the run, but process-level effects are not sampled,
and the record says so ("unit": "in-process").
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from zhisuan.bench.core import precision, timing
from zhisuan.bench.core.precision import DEFAULT_BLOCK_S, DEFAULT_PRECISION, MAX_ROUNDS, MIN_ROUNDS
from zhisuan.bench.core.results import Result, shape_label
from zhisuan.bench.harness import checktime, runner
from zhisuan.kernels.registry import dtype_name

ROUND_TIMEOUT_S = 1800.0  # a round that takes longer has hung


@dataclass
class RoundPlan:
    """How many rounds: exactly `rounds`, or adaptively between min_rounds and max_rounds."""

    rounds: int | None = None
    min_rounds: int = MIN_ROUNDS
    max_rounds: int = MAX_ROUNDS
    precision: float = DEFAULT_PRECISION
    max_time_s: float | None = None  # wall-clock budget of the whole run (rounds already begun finish)
    in_process: bool = False

    def __post_init__(self):
        if self.rounds is not None and self.rounds < 1:
            raise ValueError(f"rounds must be at least 1, got {self.rounds}")
        if self.min_rounds < 1 or self.max_rounds < self.min_rounds:
            raise ValueError(
                f"need 1 <= min_rounds <= max_rounds, got {self.min_rounds} and {self.max_rounds}"
            )
        if not (self.precision > 0 and self.precision < 1):  # also refuses NaN
            raise ValueError(
                f"precision must be a fraction between 0 and 1 (e.g. 0.025), got {self.precision}"
            )
        if self.max_time_s is not None and not self.max_time_s > 0:
            raise ValueError(f"max_time_s must be positive, got {self.max_time_s}")

    @property
    def most(self) -> int:
        return self.rounds or self.max_rounds


def benchmark_key(op: str, shape: dict, dtype: str, backend: str) -> tuple:
    return (op, shape_label(shape), dtype, backend)


def result_key(result: Result) -> tuple:
    return benchmark_key(result.op, result.shape, result.dtype, result.backend)


@dataclass
class Tally:
    """One benchmark's rounds so far."""

    backend: object  # the registry Backend (its math dtypes set the peak the rates use)
    results: list[Result] = field(default_factory=list)
    hosts: list[dict] = field(default_factory=list)
    stop: str | None = None

    def add(self, result: Result, host: dict) -> None:
        self.results.append(result)
        self.hosts.append(host)
        if result.status != "ok" or not result.samples_s:
            self.stop = "failed" if result.status != "ok" else "untimed"

    def medians(self) -> list[float]:
        return [float(r.median_s) for r in self.results]

    def precision(self) -> float:
        return precision.relative_half_width(self.medians())


class InProcess:
    """Rounds inside this process: the worker's own round, without the fork."""

    unit = "in-process"

    def round(self, request: dict) -> dict:
        from zhisuan.bench.harness.worker import Child

        return Child().execute(request)

    def close(self) -> None:
        pass


class Forked:
    """Rounds in fresh processes, forked from one worker that imported torch once."""

    unit = "process"

    def __init__(self):
        from zhisuan.bench.harness.zygote import Zygote

        self.zygote = Zygote(label="zhisuan run")

    def round(self, request: dict) -> dict:
        child = self.zygote.fork()
        try:
            return child.request(request, ROUND_TIMEOUT_S)
        finally:
            child.close()

    def close(self) -> None:
        self.zygote.close()


def rotated(items: list, by: int) -> list:
    if not items:
        return items
    by %= len(items)
    return items[by:] + items[:by]


def run(
    plan: runner.RunPlan,
    round_plan: RoundPlan | None = None,
    *,
    timing_plan: timing.TimingPlan | None = None,
    flush: bool = True,
    seed: int = 0,
    run_id: str | None = None,
    interleave: bool = False,
    on_result: Callable[[Result], None] = lambda r: None,
    on_round: Callable[[int, int], None] = lambda number, pending: None,
) -> list[Result]:
    """Check and time every benchmark of the plan in rounds; each result once, when it is final."""
    from zhisuan.bench.core import chips
    from zhisuan.bench.core.results import new_run_id

    round_plan = round_plan or RoundPlan()
    timing_plan = timing_plan or timing.TimingPlan(time_budget_s=DEFAULT_BLOCK_S)
    run_id = run_id or new_run_id()
    tallies = {
        benchmark_key(case.op, case.shape, dtype_name(case.dtype), b.name): Tally(b)
        for case in plan.cases
        for b in case.backends
    }
    order = list(tallies)
    device = chips.detect(plan.device)
    executor = InProcess() if round_plan.in_process else Forked()
    finished: dict[tuple, Result] = {}

    def finish(key: tuple, stop: str) -> None:
        tally = tallies[key]
        tally.stop = tally.stop or stop
        finished[key] = merge(tally, device, executor.unit, round_plan)
        on_result(finished[key])

    start = time.monotonic()
    longest_round = 0.0
    try:
        for number in range(round_plan.most):
            pending = [k for k in order if k not in finished]
            if not pending:
                break
            elapsed = time.monotonic() - start
            if (
                number
                and round_plan.max_time_s is not None
                and elapsed + longest_round > round_plan.max_time_s
            ):
                for key in pending:
                    finish(key, "time-budget")
                break
            on_round(number + 1, len(pending))
            began = time.monotonic()
            reply = executor.round(
                {
                    "cmd": "execute",
                    "device": plan.device,
                    "cases": _cases_json(plan, set(pending), number),
                    "timing": _timing_json(timing_plan),
                    "flush": flush,
                    "seed": seed,
                    "run_id": run_id,
                    "interleave": interleave,
                    "round": number,
                }  # fmt: skip
            )
            longest_round = max(longest_round, time.monotonic() - began)
            for data in reply["results"]:
                result = Result.from_dict(data)
                tallies[result_key(result)].add(result, reply.get("host", {}))
            for key in pending:
                stop = _stop_reason(tallies[key], round_plan)
                if stop:
                    finish(key, stop)
        for key in order:
            if key not in finished:
                finish(key, "rounds" if round_plan.rounds else "max-rounds")
    except KeyboardInterrupt:
        for key in order:
            if key not in finished and tallies[key].results:
                finish(key, "interrupted")
        raise
    finally:
        executor.close()
    return [finished[key] for key in order]


def _stop_reason(tally: Tally, round_plan: RoundPlan) -> str | None:
    done = len(tally.results)
    if tally.stop:
        return tally.stop
    if round_plan.rounds is not None:
        return "rounds" if done >= round_plan.rounds else None
    if done >= round_plan.min_rounds and tally.precision() <= round_plan.precision:
        return "precision"
    return "max-rounds" if done >= round_plan.max_rounds else None


def _cases_json(plan: runner.RunPlan, pending: set, number: int) -> list[dict]:
    """The plan's cases restricted to the pending benchmarks, in this round's rotated order."""
    cases = []
    for case in plan.cases:
        names = [
            b.name for b in case.backends
            if benchmark_key(case.op, case.shape, dtype_name(case.dtype), b.name) in pending
        ]  # fmt: skip
        if names:
            cases.append({"op": case.op, "shape": case.shape, "dtype": dtype_name(case.dtype),
                          "backends": rotated(names, number)})  # fmt: skip
    return rotated(cases, number)


def _timing_json(plan: timing.TimingPlan) -> dict:
    return {"iters": plan.iters, "time_budget_s": plan.time_budget_s, "warmup_s": plan.warmup_s}


def merge(tally: Tally, device, unit: str, round_plan: RoundPlan) -> Result:
    """One Result from a benchmark's rounds: every sample, the rates of their median, the record."""
    failed = next((r for r in tally.results if r.status != "ok"), None)
    if failed is not None or not tally.results[0].samples_s:
        result = copy.deepcopy(failed or tally.results[0])
        result.extra[precision.SAMPLING_KEY] = {"unit": unit, "stop": tally.stop,
                                                "failed_in_round": len(tally.results)}  # fmt: skip
        return result
    result = copy.deepcopy(tally.results[0])
    samples = [s for r in tally.results for s in r.samples_s]
    math_dtype = tally.backend.math_dtypes.get(result.dtype, result.dtype)
    checktime.fill(result, samples, device, math_dtype)
    # The round whose check came closest to its tolerance speaks for the run.
    result.check = max((r.check for r in tally.results), key=_check_margin)
    achieved = tally.precision()
    result.extra[precision.SAMPLING_KEY] = {
        "unit": unit,
        "round_sizes": [len(r.samples_s) for r in tally.results],
        "stop": tally.stop,
        "precision": achieved if achieved != float("inf") else None,
        "target": round_plan.precision,
        "confidence": precision.CONFIDENCE,
        "host": tally.hosts,
    }
    return result


def _check_margin(check: dict) -> float:
    tolerance = check.get("tolerance") or 0.0
    error = check.get("max_abs_err") or 0.0
    return error / tolerance if tolerance else 0.0
