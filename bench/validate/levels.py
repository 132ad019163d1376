"""What each level measures, and how big: one LevelPlan per (level, device kind).

The sizes are the real ones: matmul products large enough to reach the chip's maximum achievable
rate, STREAM arrays several times the last-level cache / L2, an attention shape that real models
run. Tests shrink them through one switch, the environment variable ZHISUAN_VALIDATE_TEST_SIZES=tiny,
which every record then carries (extra["sizes"] = "test"), so a tiny run can never pass for a real one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace

from zhisuan.bench.core.errors import UsageError

LEVELS = ("quick", "standard", "burn-in")
TEST_SIZES_ENV = "ZHISUAN_VALIDATE_TEST_SIZES"
DEFAULT_BURN_IN_S = 600.0

# STREAM's rule: each array at least 4x the largest cache, so every pass streams from memory.
STREAM_CACHE_MULTIPLE = 4
STREAM_MIN_ARRAY_BYTES = {"cpu": 64 << 20, "cuda": 1 << 30}


@dataclass(frozen=True)
class LevelPlan:
    level: str
    matmul_sizes: tuple[int, ...]  # square M = N = K
    fp8_sizes: tuple[int, ...]  # GPU fp8 (tensor-core fp8 needs large products to pay off)
    all_backends: bool  # every available backend (ours too), or the vendor's baseline only
    time_budget_s: float  # timed samples per measurement
    stream_array_bytes: int | None  # None: sized from the device's cache (STREAM's rule)
    attention_shape: tuple[int, int, int, int]  # batch, heads, seq, head_dim (non-causal)
    allreduce_bytes: int
    allreduce_iters: int
    host_copy_bytes: int  # host <-> device copies (GPU)
    integrity_size: int
    integrity_repeats: int
    burn_in_size: int
    burn_in_s: float = 0.0  # 0: no burn-in
    flush: bool = True  # flush caches between timed samples (the tiny test sizes skip it: no time)
    sizes: str = "real"  # "real" or "test" (the tiny override)


_PLANS = {
    ("quick", "cpu"): LevelPlan(
        level="quick",
        matmul_sizes=(1024, 1536),
        fp8_sizes=(),
        all_backends=True,
        time_budget_s=0.25,
        stream_array_bytes=None,
        attention_shape=(1, 8, 2048, 64),
        allreduce_bytes=32 << 20,
        allreduce_iters=10,
        host_copy_bytes=0,
        integrity_size=512,
        integrity_repeats=20,
        burn_in_size=1024,
    ),
    ("standard", "cpu"): LevelPlan(
        level="standard",
        matmul_sizes=(512, 1024, 2048, 3072),
        fp8_sizes=(),
        all_backends=True,
        time_budget_s=1.0,
        stream_array_bytes=None,
        attention_shape=(1, 8, 2048, 64),
        allreduce_bytes=128 << 20,
        allreduce_iters=20,
        host_copy_bytes=0,
        integrity_size=1024,
        integrity_repeats=100,
        burn_in_size=1536,
    ),
    ("quick", "cuda"): LevelPlan(
        level="quick",
        matmul_sizes=(4096, 8192),
        fp8_sizes=(8192,),
        all_backends=False,
        time_budget_s=0.3,
        stream_array_bytes=None,
        attention_shape=(4, 16, 4096, 128),
        allreduce_bytes=256 << 20,
        allreduce_iters=10,
        host_copy_bytes=256 << 20,
        integrity_size=8192,
        integrity_repeats=20,
        burn_in_size=8192,
    ),
    ("standard", "cuda"): LevelPlan(
        level="standard",
        matmul_sizes=(2048, 4096, 8192, 16384),
        fp8_sizes=(4096, 8192, 16384),
        all_backends=True,
        time_budget_s=1.0,
        stream_array_bytes=None,
        attention_shape=(4, 16, 4096, 128),
        allreduce_bytes=1 << 30,
        allreduce_iters=20,
        host_copy_bytes=1 << 30,
        integrity_size=8192,
        integrity_repeats=100,
        burn_in_size=8192,
    ),
}

# Tiny sizes for the test suite only (seconds on 2 cores; awkward sizes on purpose).
_TEST = {
    "matmul_sizes": (64, 97),
    "fp8_sizes": (64,),
    "time_budget_s": 0.02,
    "stream_array_bytes": 8 * 100_003,
    "attention_shape": (1, 2, 97, 32),
    "allreduce_bytes": 64 << 10,
    "allreduce_iters": 3,
    "host_copy_bytes": 1 << 20,
    "integrity_size": 97,
    "integrity_repeats": 3,
    "burn_in_size": 97,
    "flush": False,
    "sizes": "test",
}


def plan_for(level: str, device_kind: str, burn_in_s: float | None = None) -> LevelPlan:
    """The plan of a level on a device kind ('cpu' or 'cuda'); burn-in = standard + sustained load."""
    if level not in LEVELS:
        raise UsageError(f"--level must be one of {', '.join(LEVELS)}, got {level!r}")
    if device_kind not in ("cpu", "cuda"):
        raise UsageError(f"validate runs on cpu or cuda devices, not {device_kind!r}")
    base = _PLANS[("quick" if level == "quick" else "standard", device_kind)]
    plan = replace(base, level=level)
    if level == "burn-in":
        plan = replace(plan, burn_in_s=DEFAULT_BURN_IN_S if burn_in_s is None else burn_in_s)
    override = os.environ.get(TEST_SIZES_ENV)
    if override:
        if override != "tiny":
            raise UsageError(f"{TEST_SIZES_ENV}={override!r}: the only test size is 'tiny'")
        plan = replace(plan, **_TEST)
    return plan


def stream_array_bytes(plan: LevelPlan, device_kind: str, cache_bytes: int) -> int:
    """Bytes per STREAM array: at least 4x the largest cache, and never below a floor per kind."""
    if plan.stream_array_bytes is not None:
        return plan.stream_array_bytes
    return max(STREAM_CACHE_MULTIPLE * cache_bytes, STREAM_MIN_ARRAY_BYTES[device_kind])


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$", re.IGNORECASE)
_UNIT_S = {None: 1.0, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """'10m' -> 600.0; '90' and '90s' -> 90.0; '1.5h' -> 5400.0."""
    match = _DURATION.match(text)
    if not match:
        raise UsageError(
            f"--duration {text!r}: write a number with an optional unit s, m or h (e.g. 30s, 10m, 2h)"
        )
    seconds = float(match.group(1)) * _UNIT_S[match.group(2).lower() if match.group(2) else None]
    if seconds <= 0:
        raise UsageError(f"--duration {text!r} must be positive")
    return seconds
