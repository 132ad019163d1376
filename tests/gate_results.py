"""Synthetic results for the regression-gate tests (tests/test_compare*.py, test_history*.py)."""

from __future__ import annotations

import numpy as np

from zhisuan.bench.core.result_files import ResultWriter
from zhisuan.bench.core.results import Result

ENV = {"torch": "2.13.0+cpu", "triton": "3.9.0", "cuda": None, "torch_threads": 2, "git_sha": "abc1234"}


def timed_result(median_s: float = 1e-3, *, noise: float = 0.02, n: int = 30, seed: int = 0,
                 backend: str = "cpp", size: int = 256, rounds: int | None = None, round_noise: float = 0.0,
                 host: dict | None = None, **fields) -> Result:  # fmt: skip
    """A matmul Result whose n samples are median_s with Gaussian noise of relative size `noise`.

    rounds: the samples come in that many rounds (as `zhisuan run` records them), each shifted as a
    whole by Gaussian noise of relative size `round_noise` (a process's placement, a neighbour's spell);
    host: what each round's reading of the host says (e.g. {"others_cores": 1.5, "cpus": 2}).
    """
    rng = np.random.default_rng(seed)
    per_round = [n // rounds] * rounds if rounds else [n]
    shifts = 1 + round_noise * rng.standard_normal(len(per_round))
    samples = [
        float(median_s * shift * (1 + noise * x))
        for shift, count in zip(shifts, per_round, strict=True)
        for x in rng.standard_normal(count)
    ]
    extra = {}
    if rounds:
        extra["sampling"] = {"unit": "process", "round_sizes": per_round, "stop": "rounds",
                             "host": [dict(host or {}) for _ in per_round]}  # fmt: skip
    values = dict(
        kind="kernel", op="matmul", backend=backend, shape={"M": size, "N": size, "K": size}, dtype="fp32",
        device="cpu", device_name="Test CPU 9000", samples_s=samples, median_s=float(np.median(samples)),
        env=dict(ENV), run_id="run-a", timestamp=1.7e9, extra=extra,
    )  # fmt: skip
    values.update(fields)
    return Result(**values)


def failed_result(status: str = "error", error: str = "RuntimeError: boom", **fields) -> Result:
    """A Result of a run that crashed or failed its check: no samples, no median."""
    result = timed_result(**fields)
    result.status, result.error, result.samples_s, result.median_s = status, error, [], None
    return result


def write_results(path, results: list[Result]) -> str:
    """results as a JSON Lines file at path; the path as a string, for a command line."""
    with ResultWriter(path) as writer:
        for r in results:
            writer.write(r)
    return str(path)
