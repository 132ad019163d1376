"""Which differences between two runs' environments make their timings incomparable.

A different chip, driver, CUDA, torch or triton version, thread count or clock setting changes
timings for reasons that are not the code under test: such a difference blocks the comparison
unless the user accepts it. Everything else that differs (git SHA, host, Python) is reported as a
note, because the reader should know it, but it does not block.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zhisuan.bench.core.results import Result

# Fingerprint keys whose difference blocks a comparison. A missing value (None) counts as a value
# here: "triton not installed" vs "triton 3.1" is a real difference.
BLOCKING_KEYS = ("torch", "triton", "cuda", "cuda_driver", "hip", "rocm", "torch_threads")
# Clock readings block only when both runs could read them (None means "not readable").
CLOCK_MARKERS = ("clock", "clocks")


@dataclass
class EnvDiff:
    device: dict = field(default_factory=dict)  # "baseline"/"current" -> sorted device names, if they differ
    blocking: dict = field(default_factory=dict)  # key -> (baseline values, current values)
    notes: dict = field(default_factory=dict)

    @property
    def blocks(self) -> bool:
        return bool(self.device or self.blocking)

    def describe(self) -> list[str]:
        lines = []
        if self.device:
            lines.append(
                f"device: baseline ran on {', '.join(self.device['baseline'])}; "
                f"current on {', '.join(self.device['current'])}"
            )
        lines += [f"{key}: {_show(b)} -> {_show(c)}" for key, (b, c) in sorted(self.blocking.items())]
        return lines

    def describe_notes(self) -> list[str]:
        return [f"{key}: {_show(b)} -> {_show(c)}" for key, (b, c) in sorted(self.notes.items())]


def _show(values: tuple) -> str:
    return " | ".join("unknown" if v is None else str(v) for v in values)


def _is_clock(key: str) -> bool:
    return any(marker in key.lower() for marker in CLOCK_MARKERS)


def _values(results: list[Result], key: str) -> tuple:
    return tuple(sorted({repr(r.env.get(key)): r.env.get(key) for r in results}.values(), key=repr))


def compare_environments(baseline: list[Result], current: list[Result]) -> EnvDiff:
    """Differences between the environments of two sets of results (usually the matched pairs)."""
    diff = EnvDiff()
    base_devices = sorted({r.device_name for r in baseline})
    cur_devices = sorted({r.device_name for r in current})
    if base_devices != cur_devices:
        diff.device = {"baseline": base_devices, "current": cur_devices}
    keys = {k for r in baseline + current for k in r.env}
    for key in sorted(keys):
        in_base = any(key in r.env for r in baseline)
        in_cur = any(key in r.env for r in current)
        b, c = _values(baseline, key), _values(current, key)
        if b == c:
            continue
        if _is_clock(key):
            readable = all(v is not None for v in b + c)
            (diff.blocking if readable else diff.notes)[key] = (b, c)
        elif key in BLOCKING_KEYS and in_base and in_cur:
            diff.blocking[key] = (b, c)
        else:
            diff.notes[key] = (b, c)
    return diff
