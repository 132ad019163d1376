"""Summary statistics of timing samples (every sample is kept; these are views of them)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Summary:
    n: int
    median_s: float
    mean_s: float
    min_s: float
    iqr_s: float  # interquartile range: the spread that ignores outliers
    cv: float  # coefficient of variation: std / mean


def summarize(samples: list[float]) -> Summary:
    if not samples:
        raise ValueError("summarize: no samples")
    x = np.asarray(samples, dtype=np.float64)
    q25, q50, q75 = np.percentile(x, [25, 50, 75])
    mean = float(x.mean())
    return Summary(
        n=len(x),
        median_s=float(q50),
        mean_s=mean,
        min_s=float(x.min()),
        iqr_s=float(q75 - q25),
        cv=float(x.std(ddof=1) / mean) if len(x) > 1 and mean > 0 else 0.0,
    )
