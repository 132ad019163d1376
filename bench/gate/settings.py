"""Per-benchmark gate settings from a small TOML file: some kernels are noisier than others.

    # gate.toml
    [defaults]            # optional: replaces --threshold / --alpha for every benchmark
    threshold = 0.05
    alpha = 0.01

    [[rule]]              # the first rule that matches a benchmark wins
    op = "attention"      # glob patterns (fnmatch) on op, backend, shape label and dtype;
    backend = "triton*"   # a field left out matches anything
    shape = "*seq_q=4096*"
    threshold = 0.10      # 10%
    alpha = 0.001         # optional

Shape patterns match the label `Result.shape` prints as: 'M=1024,N=1024,K=1024'.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from zhisuan.bench.core.errors import UsageError
from zhisuan.bench.core.results import Result, shape_label
from zhisuan.bench.gate.decision import DEFAULT_ALPHA, DEFAULT_THRESHOLD

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

MATCH_FIELDS = ("op", "backend", "shape", "dtype")
SETTING_FIELDS = ("threshold", "alpha")


@dataclass(frozen=True)
class Rule:
    patterns: dict  # field -> glob
    threshold: float | None = None
    alpha: float | None = None

    def matches(self, result: Result) -> bool:
        values = {"op": result.op, "backend": result.backend, "shape": shape_label(result.shape)}
        values["dtype"] = result.dtype
        return all(fnmatchcase(str(values[name]), pattern) for name, pattern in self.patterns.items())


@dataclass(frozen=True)
class GateSettings:
    threshold: float = DEFAULT_THRESHOLD
    alpha: float = DEFAULT_ALPHA
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    def for_result(self, result: Result) -> tuple[float, float]:
        """(threshold, alpha) for one benchmark: the first matching rule, else the defaults."""
        for rule in self.rules:
            if rule.matches(result):
                return (
                    self.threshold if rule.threshold is None else rule.threshold,
                    self.alpha if rule.alpha is None else rule.alpha,
                )
        return self.threshold, self.alpha


def parse_fraction(text: str, name: str = "threshold", *, zero_ok: bool = True) -> float:
    """'5%' -> 0.05, '0.05' -> 0.05: a finite fraction. A bare number of 1 or more is refused as
    ambiguous; NaN, infinities and negative numbers are refused (NaN would switch a gate off)."""
    text = str(text).strip()
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise UsageError(f"{name} {text!r} is not a number (write 5% or 0.05)") from None
    if not math.isfinite(value):
        raise UsageError(f"{name} {text!r} is not a finite number (write 5% or 0.05)")
    if not text.endswith("%") and value >= 1:
        raise UsageError(f"{name} {text!r} is ambiguous: write {value:g}% or {value / 100:g}")
    if value < 0 or (value == 0 and not zero_ok):
        raise UsageError(f"{name} {text!r} must be {'>= 0' if zero_ok else 'positive'}")
    return value


def parse_threshold(text: str) -> float:
    return parse_fraction(text, "threshold")


def parse_alpha(value, name: str = "alpha") -> float:
    """A significance level strictly between 0 and 1 (NaN refused)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name}: expected a significance level like 0.01, got {value!r}") from None
    if isinstance(value, bool) or not 0 < number < 1:
        raise UsageError(f"{name} must be between 0 and 1, got {value!r}")
    return number


def _check_setting(name: str, value, where: str) -> float:
    if name == "alpha":
        return parse_alpha(value, f"{where}: alpha")
    if isinstance(value, str):
        try:
            return parse_threshold(value)
        except ValueError as exc:
            raise UsageError(f"{where}: {exc}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:  # NaN fails too
        raise UsageError(
            f"{where}: threshold must be a fraction in [0, 1) or a string like '5%', got {value!r}"
        )
    return float(value)


def load_settings(
    path: str | Path | None, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA
) -> GateSettings:
    """Settings from the command line, overridden by the file's [defaults] and refined by its rules."""
    if path is None:
        return GateSettings(threshold, alpha)
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"thresholds file {path}: no such file") from None
    except OSError as exc:
        raise UsageError(f"thresholds file {path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"thresholds file {path}: not a text file") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"thresholds file {path}: not valid TOML ({exc})") from None
    unknown = set(data) - {"defaults", "rule"}
    if unknown:
        raise UsageError(f"thresholds file {path}: unknown section(s) {', '.join(sorted(unknown))}")
    defaults, entries = data.get("defaults", {}), data.get("rule", [])
    if not isinstance(defaults, dict):
        raise UsageError(f"thresholds file {path}: [defaults] must be a table")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UsageError(f"thresholds file {path}: rules must be [[rule]] tables")
    for name in set(defaults) - set(SETTING_FIELDS):
        raise UsageError(f"thresholds file {path}: [defaults] has unknown key {name!r}")
    if "threshold" in defaults:
        threshold = _check_setting("threshold", defaults["threshold"], f"{path} [defaults]")
    if "alpha" in defaults:
        alpha = _check_setting("alpha", defaults["alpha"], f"{path} [defaults]")
    rules = []
    for number, entry in enumerate(entries, start=1):
        where = f"{path} rule {number}"
        unknown = set(entry) - set(MATCH_FIELDS) - set(SETTING_FIELDS)
        if unknown:
            raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        if not set(entry) & set(SETTING_FIELDS):
            raise UsageError(f"{where}: sets neither threshold nor alpha")
        patterns = {k: str(entry[k]) for k in MATCH_FIELDS if k in entry}
        settings = {k: _check_setting(k, entry[k], where) for k in SETTING_FIELDS if k in entry}
        rules.append(Rule(patterns, **settings))
    return GateSettings(threshold, alpha, tuple(rules))
