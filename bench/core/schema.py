"""The one schema check of a result record, applied by every reader before a record becomes a Result.

Result files and the history database are untrusted input: a hand-edited file, a file from another
tool, a torn write. Every reader (JSON Lines, pytest-benchmark JSON, the history database) passes
each record through check_record, which names the first field that is wrong and what it should
be; the reader adds the file and line. What passes is safe for every consumer: numbers are finite
numbers, texts are texts, a shape is a flat mapping, nesting is bounded, and the `extra` fields
that readers look up by name (rank, verdict, in_place, ...) have the type those readers expect.
"""

from __future__ import annotations

import math
from collections.abc import Callable

SCHEMA_VERSION = 1
STATUSES = ("ok", "check-failed", "error", "mutated", "suspect", "unchecked")
REQUIRED = ("kind", "op", "backend", "shape", "dtype", "device", "device_name")
MAX_DEPTH = 16  # nesting of env / extra / check: zhisuan writes at most 5 levels
MAX_INT = 2**1023  # larger integers cannot become floats
MAX_TEXT = 10_000  # characters of one text field (an error message with a traceback fits)


class SchemaError(ValueError):
    """One field of one record is wrong: `field` names it (dotted for nested fields)."""

    def __init__(self, field: str, message: str, whole_record: bool = False):
        super().__init__(message if whole_record else f"field {field!r}: {message}")
        self.field = field


def _is_number(value) -> bool:
    """A finite int or float that fits a float (an int of 400 digits does not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) if isinstance(value, float) else abs(value) <= MAX_INT


def _text(value) -> str | None:
    if not isinstance(value, str):
        return f"expected text, got {_type(value)}"
    if len(value) > MAX_TEXT:
        return f"text of {len(value)} characters (at most {MAX_TEXT})"
    return None


def _number(value) -> str | None:
    if _is_number(value):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return f"expected a finite number, got an integer of {len(str(abs(value)))} digits"
    return f"expected a finite number, got {_type(value)}"


def optional(check: Callable[[object], str | None]) -> Callable[[object], str | None]:
    """check, with null allowed too."""
    return lambda value: None if value is None else check(value)


def _optional_nonnegative(value) -> str | None:
    if value is None:
        return None
    return _number(value) or (f"expected a number >= 0, got {value!r}" if value < 0 else None)


def _integer(value) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return None
    return f"expected an integer, got {_type(value)}"


def _boolean(value) -> str | None:
    return None if isinstance(value, bool) else f"expected true or false, got {_type(value)}"


def _samples(value) -> str | None:
    if not isinstance(value, list):
        return f"expected a list of seconds, got {_type(value)}"
    for i, item in enumerate(value):
        if not _is_number(item) or item < 0:
            return f"item {i}: expected a finite number of seconds >= 0, got {item!r:.40}"
    return None


def _shape(value) -> str | None:
    if not isinstance(value, dict):
        return f"expected a mapping like {{'M': 1024}}, got {_type(value)}"
    for key, item in value.items():
        if not (_is_number(item) or isinstance(item, str | bool)):
            return f"{key!r}: expected a number, text or true/false, got {_type(item)}"
        if isinstance(item, str) and len(item) > MAX_TEXT:
            return f"{key!r}: text of {len(item)} characters"
    return None


def _mapping(value) -> str | None:
    return None if isinstance(value, dict) else f"expected a mapping, got {_type(value)}"


def _list(value) -> str | None:
    return None if isinstance(value, list) else f"expected a list, got {_type(value)}"


def _fields(**fields: Callable[[object], str | None]) -> Callable[[object], str | None]:
    """A check of an optional mapping whose named keys have the given types."""

    def check(value) -> str | None:
        if not isinstance(value, dict):
            return f"expected a mapping, got {_type(value)}"
        for name, field_check in fields.items():
            if name in value and (problem := field_check(value[name])):
                return f"{name!r}: {problem}"
        return None

    return optional(check)


def _rows(**fields: Callable[[object], str | None]) -> Callable[[object], str | None]:
    """A check of an optional list of mappings whose named keys have the given types."""
    row_check = _fields(**fields)

    def check(value) -> str | None:
        if not isinstance(value, list):
            return f"expected a list, got {_type(value)}"
        for i, row in enumerate(value):
            if problem := (row_check(row) if row is not None else "expected a mapping, got null"):
                return f"item {i}: {problem}"
        return None

    return optional(check)


def _texts(value) -> str | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return f"expected a list of texts, got {_type(value)}"
    return None


def _counts(value) -> str | None:
    if not isinstance(value, dict) or not all(_integer(n) is None for n in value.values()):
        return "expected a mapping of verdict to a count"
    return None


_optional_text, _optional_number, _optional_integer = optional(_text), optional(_number), optional(_integer)
_optional_boolean, _optional_mapping, _optional_list = optional(_boolean), optional(_mapping), optional(_list)


def _status(value) -> str | None:
    return _text(value) or (None if value in STATUSES else f"{value!r} is not one of {', '.join(STATUSES)}")


FIELDS: dict[str, Callable[[object], str | None]] = {
    "kind": _text, "op": _text, "backend": _text, "shape": _shape, "dtype": _text, "device": _text,
    "device_name": _text, "status": _status, "error": _optional_text, "samples_s": _samples,
    "median_s": _optional_nonnegative, "iqr_s": _optional_nonnegative, "cv": _optional_number,
    "flops": _optional_nonnegative, "bytes": _optional_nonnegative, "flops_per_s": _optional_nonnegative,
    "bytes_per_s": _optional_nonnegative, "peak_flops": _optional_nonnegative, "peak_status": _optional_text,
    "pct_peak": _optional_number, "measured_peak_flops": _optional_nonnegative,
    "pct_measured_peak": _optional_number, "peak_bandwidth": _optional_nonnegative,
    "pct_peak_bandwidth": _optional_number, "check": _mapping, "interpreted": _boolean, "extra": _mapping,
    "env": _mapping, "run_id": _text, "timestamp": _number, "schema": _integer,
}  # fmt: skip

# Fields inside `check` and `extra` that readers look up by name, with the type they rely on.
CHECK_FIELDS = {"max_abs_err": _optional_number, "tolerance": _optional_number, "passed": _optional_boolean,
                "rule": _optional_text, "wrong": _optional_integer}  # fmt: skip
EXTRA_FIELDS = {
    # every kind
    "host": _optional_text, "rank": _optional_integer, "world": _optional_integer,
    # collectives: what identifies a measurement besides the shape
    "in_place": _optional_boolean, "op": _optional_text, "root": _optional_integer,
    "busbw": _optional_number, "algbw": _optional_number, "wrong": _optional_integer,
    # validate
    "verdict": _optional_text, "check": _optional_text, "unit": _optional_text, "reason": _optional_text,
    "value": lambda v: None if v is None or _is_number(v) or isinstance(v, str | bool) else f"got {_type(v)}",
    "threshold": _fields(compare=_optional_text),
    "counts": optional(_counts),
    "cluster": _fields(dtype=_optional_text, ranks=_optional_integer, measured_ranks=_optional_integer,
                       achieved_pflops=_optional_number, nameplate_pflops=_optional_number,
                       pct_of_nameplate=_optional_number, nameplate_status=optional(_texts), nameplate_reason=_optional_text),
    "telemetry": _fields(unreadable=_optional_mapping),
    "stragglers": _rows(check=_optional_text, rank=_optional_integer, value=_optional_number,
                        median=_optional_number, unit=_optional_text, deficit_pct=_optional_number),
    "devices": _optional_list,
    "timeline": _rows(t=_optional_number, tflops=_optional_number, sm_clock_mhz=_optional_number,
                      temp_c=_optional_number, power_w=_optional_number),
    "sizes": _optional_text, "level": _optional_text, "interrupted": _optional_boolean,
    "duration_s": _optional_number, "ratio": _optional_number, "config": _optional_text, "digest": _optional_text,
}  # fmt: skip


def _type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return {dict: "a mapping", list: "a list", str: "text", int: "an integer", float: "a number"}.get(
        type(value), type(value).__name__
    )


def depth(value, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of a JSON value (0 for a scalar); stops counting past limit."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if level > limit:
            return level
        deepest = max(deepest, level)
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack += [(child, level + 1) for child in children if isinstance(child, dict | list)]
    return deepest


def check_record(data: object) -> None:
    """Raise SchemaError (naming the field) unless data is a valid result record of SCHEMA_VERSION."""
    if not isinstance(data, dict):
        raise SchemaError("(record)", f"expected a JSON object, got {_type(data)}", whole_record=True)
    schema = data.get("schema")
    if "schema" not in data:
        raise SchemaError(
            "schema", "not a zhisuan result record (it has no 'schema' field)", whole_record=True
        )
    if schema != SCHEMA_VERSION:
        raise SchemaError(
            "schema",
            f"result schema version {schema!r:.40} is not supported (this zhisuan reads version {SCHEMA_VERSION})",
            whole_record=True,
        )
    missing = [name for name in REQUIRED if name not in data]
    if missing:
        raise SchemaError(
            missing[0], f"result record lacks field(s): {', '.join(missing)}", whole_record=True
        )
    for name, check in FIELDS.items():
        if name in data and (problem := check(data[name])):
            raise SchemaError(name, problem)
    for name in ("check", "extra", "env"):
        if name in data and depth(data[name]) > MAX_DEPTH:
            raise SchemaError(name, f"nested more than {MAX_DEPTH} levels deep")
    for parent, fields in (("check", CHECK_FIELDS), ("extra", EXTRA_FIELDS)):
        mapping = data.get(parent) or {}
        for name, check in fields.items():
            if name in mapping and (problem := check(mapping[name])):
                raise SchemaError(f"{parent}.{name}", problem)
