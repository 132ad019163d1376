"""Pass / warn thresholds: the rules of bench/data/thresholds.toml (format documented there).

rules = load()                        # the defaults
rules = load("site.toml")             # a site's file first, the defaults after it
rule = rules.find("h100-sxm", "cuda", "matmul", "bf16")
judge(0.81, rule)                     # "PASS"
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from zhisuan.bench.core.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

BASES = ("datasheet", "measured-fma", "copy-ceiling", "burst", "value")
VERDICTS = ("PASS", "WARN", "FAIL", "SKIP")
_RANK = {"SKIP": 0, "PASS": 1, "WARN": 2, "FAIL": 3}
DEFAULT_MARGIN_PCT = 5.0


@dataclass(frozen=True)
class Rule:
    chips: tuple[str, ...]
    checks: tuple[str, ...]
    dtypes: tuple[str, ...]
    pass_fraction: float
    warn_fraction: float
    basis: str
    source: str
    reference: float | None = None  # basis "value" only
    unit: str | None = None
    origin: str = ""  # the file it came from

    def matches(self, chip: str, check: str, dtype: str) -> bool:
        return chip in self.chips and check in self.checks and ("*" in self.dtypes or dtype in self.dtypes)


@dataclass(frozen=True)
class Thresholds:
    rules: tuple[Rule, ...]  # a user's file first, then the defaults
    margin_pct: float = DEFAULT_MARGIN_PCT

    def find(self, chip_id: str | None, device_kind: str, check: str, dtype: str) -> Rule | None:
        """The most specific rule: by chip id, then 'cpu' / 'gpu', then '*'."""
        kind_alias = "cpu" if device_kind == "cpu" else "gpu"
        for chip in (chip_id, kind_alias, "*"):
            if chip is None:
                continue
            for rule in self.rules:
                if rule.matches(chip, check, dtype):
                    return rule
        return None


def judge(ratio: float, rule: Rule) -> str:
    """PASS, WARN or FAIL for value / basis (a NaN is a FAIL)."""
    if ratio != ratio:  # NaN
        return "FAIL"
    if ratio >= rule.pass_fraction:
        return "PASS"
    if ratio >= rule.warn_fraction:
        return "WARN"
    return "FAIL"


def worst(verdicts) -> str:
    """The overall verdict: FAIL over WARN over PASS; SKIPs count only when nothing else ran."""
    return max(verdicts, key=_RANK.__getitem__, default="SKIP")


def _names(entry: dict, key: str, where: str) -> tuple[str, ...]:
    value = entry.get(key)
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise UsageError(f"{where}: `{key}` must be a name or a list of names, got {value!r}")


def _rule(entry: dict, where: str, origin: str) -> Rule:
    for key in ("pass", "warn", "basis", "source"):
        if key not in entry:
            raise UsageError(f"{where}: missing `{key}`")
    basis = entry["basis"]
    if basis not in BASES:
        raise UsageError(f"{where}: basis {basis!r} is not one of {', '.join(BASES)}")
    try:
        pass_fraction, warn_fraction = float(entry["pass"]), float(entry["warn"])
    except (TypeError, ValueError):
        raise UsageError(f"{where}: `pass` and `warn` must be numbers") from None
    if not 0 <= warn_fraction <= pass_fraction:
        raise UsageError(f"{where}: need 0 <= warn <= pass, got warn={warn_fraction}, pass={pass_fraction}")
    reference = entry.get("reference")
    if basis == "value":
        if not isinstance(reference, (int, float)) or reference <= 0 or not entry.get("unit"):
            raise UsageError(f"{where}: basis 'value' needs a positive `reference` and its `unit`")
        reference = float(reference)
    return Rule(
        chips=_names(entry, "chip", where),
        checks=_names(entry, "check", where),
        dtypes=_names(entry, "dtype", where),
        pass_fraction=pass_fraction,
        warn_fraction=warn_fraction,
        basis=basis,
        source=str(entry["source"]),
        reference=reference,
        unit=entry.get("unit"),
        origin=origin,
    )


def parse(text: str, origin: str) -> tuple[list[Rule], float | None]:
    """Rules and the straggler margin (None when the file does not set it) from TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"thresholds file {origin}: not valid TOML ({exc})") from None
    entries = data.get("rule", [])
    if not isinstance(entries, list):
        raise UsageError(f"thresholds file {origin}: `rule` must be an array of tables ([[rule]])")
    rules = [
        _rule(entry, f"thresholds file {origin}, rule {i + 1}", origin) for i, entry in enumerate(entries)
    ]
    margin = data.get("straggler_margin_pct")
    if margin is not None and (not isinstance(margin, (int, float)) or margin < 0):
        raise UsageError(f"thresholds file {origin}: straggler_margin_pct must be a number >= 0")
    return rules, None if margin is None else float(margin)


def load(path: str | Path | None = None) -> Thresholds:
    """The default rules, preceded by those of `path` (which also may set the straggler margin)."""
    default_text = files("zhisuan.bench").joinpath("data/thresholds.toml").read_text()
    rules, margin = parse(default_text, "bench/data/thresholds.toml")
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"--thresholds {path}: no such file")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--thresholds {path}: cannot read ({exc})") from None
        user_rules, user_margin = parse(text, str(path))
        rules = user_rules + rules
        margin = user_margin if user_margin is not None else margin
    return Thresholds(tuple(rules), DEFAULT_MARGIN_PCT if margin is None else margin)
