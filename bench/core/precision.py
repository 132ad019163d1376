"""How precisely a run pins down a benchmark's time: rounds, their medians, the confidence interval.

A run of `zhisuan run` times each benchmark in rounds (zhisuan.bench.harness.rounds): each round a
fresh process, the rounds spread over the run. Whole processes shift (where their buffers landed,
their threads' placement, a neighbour's spell of load), so the round, not the sample, is the unit of
evidence: the run's time is the geometric mean of its round medians, and its precision is the
half-width of that mean's confidence interval (Student's t over the rounds' log medians), relative.

The record, in Result.extra["sampling"] (written by the rounds runner, read by the gate):
    unit             "process" (a fresh process per round) or "in-process" (rounds in one process)
    round_sizes      samples per round, in order: samples_s split into its rounds
    stop             why sampling stopped: "precision" (target reached), "rounds" (as many as asked),
                     "max-rounds", "time-budget", "interrupted", "failed"
    precision        the achieved relative half-width (None with a single round)
    target, confidence
    host             per round: what else ran on the host (other processes' cores, load average)
"""

from __future__ import annotations

import math

import numpy as np

CONFIDENCE = 0.95
SAMPLING_KEY = "sampling"
# The defaults of a run's rounds (zhisuan.bench.harness.rounds), here so the CLI can show them
# without importing torch.
# At least 5 rounds before a benchmark may stop: 3 rounds that happened to agree stopped one at
# "precision" while its other runs spread +-9%, and a compare of the same code failed at +12%.
MIN_ROUNDS = 5
MAX_ROUNDS = 10
DEFAULT_PRECISION = 0.0125  # +-1.25%: an interval as wide as half the gate's default threshold (5%)
DEFAULT_BLOCK_S = 0.15  # timed seconds per benchmark per round


def t_quantile(probability: float, dof) -> np.ndarray:
    """Student's t quantile. scipy.special, not scipy.stats: importing scipy.stats costs 1-5 s, paid
    by every `zhisuan run` after its first round."""
    from scipy import special

    return special.stdtrit(dof, probability)


def log_center_and_error(values) -> tuple[float, float, int]:
    """(mean of the logs, its standard error, degrees of freedom) of positive values."""
    logs = np.log(np.asarray(values, dtype=np.float64))
    n = len(logs)
    if n < 2:
        return float(logs.mean()) if n else math.nan, math.inf, 0
    return float(logs.mean()), float(logs.std(ddof=1) / math.sqrt(n)), n - 1


def relative_half_width(values, confidence: float = CONFIDENCE) -> float:
    """Half-width of the confidence interval of the geometric mean of values, relative (0.02 = 2%).

    inf for fewer than two values: one round says nothing about how the next would land.
    """
    _, error, dof = log_center_and_error(values)
    if dof < 1:
        return math.inf
    return math.expm1(float(t_quantile(0.5 + confidence / 2, dof)) * error)


def rounds_needed(values, target: float, confidence: float = CONFIDENCE, limit: int = 1000) -> int | None:
    """Rounds at which the half-width would likely reach target, from the spread so far (None: not
    within `limit` rounds, or unknown from fewer than two)."""
    logs = np.log(np.asarray(values, dtype=np.float64))
    if len(logs) < 2 or target <= 0:
        return None
    n = np.arange(2, limit + 1)
    widths = np.expm1(t_quantile(0.5 + confidence / 2, n - 1) * logs.std(ddof=1) / np.sqrt(n))
    enough = np.flatnonzero(widths <= target)
    return int(n[enough[0]]) if enough.size else None


def round_medians(samples: list[float], sizes: list[int]) -> list[float]:
    """The median of each round, samples_s cut by round_sizes."""
    if sum(sizes) != len(samples):
        raise ValueError(f"round sizes add up to {sum(sizes)}, but there are {len(samples)} samples")
    out, start = [], 0
    for size in sizes:
        out.append(float(np.median(samples[start : start + size])))
        start += size
    return out


def rounds_of(result) -> list[float] | None:
    """The per-round medians of a Result that was timed in rounds; None for one without them."""
    sampling = (result.extra or {}).get(SAMPLING_KEY) or {}
    sizes = sampling.get("round_sizes")
    if not sizes or not result.samples_s:
        return None
    return round_medians(result.samples_s, sizes)


def sampling_of(result) -> dict:
    return (result.extra or {}).get(SAMPLING_KEY) or {}
