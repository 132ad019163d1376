"""pytest-benchmark's JSON format (5.x), written by the kernel_benchmark fixture and read by every reader.

A file is {"machine_info", "commit_info", "benchmarks": [...], "datetime", "version"}; each
benchmark has group, name, fullname, params, param, extra_info, options and stats. The stats
block is computed by pytest-benchmark's own class (pytest_benchmark.stats.Stats), so its
definitions (its quartile rule, its outlier counts) are the installed pytest-benchmark's, fixes
included: writing needs pytest-benchmark; reading does not. pytest-benchmark's `--benchmark-compare`
and its `pytest-benchmark compare` command load such a file as a saved run.

zhisuan's measurements carry the whole Result (minus the samples, which are stats.data) in
extra_info["zhisuan"], so `zhisuan compare`, `report` and `history` read them back exactly. Files
written by pytest-benchmark's own `benchmark` fixture are read too, as results of kind
"pytest-benchmark"; they need their samples (--benchmark-json or --benchmark-save-data) to be compared.
"""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path

from zhisuan.bench.core.results import Result, ResultFileError

ZHISUAN_KEY = "zhisuan"
NEEDS_PYTEST_BENCHMARK = (
    "writing pytest-benchmark JSON needs pytest-benchmark for its statistics: pip install pytest-benchmark"
)


class PytestBenchmarkMissing(RuntimeError):
    """pytest-benchmark is not installed, and what was asked needs its statistics."""


def pytest_benchmark_version() -> str:
    """The installed pytest-benchmark's version; PytestBenchmarkMissing (one line) when it is absent."""
    try:
        import pytest_benchmark
    except ImportError:
        raise PytestBenchmarkMissing(NEEDS_PYTEST_BENCHMARK) from None
    return pytest_benchmark.__version__


def stats_of(samples: list[float]) -> dict:
    """The `stats` block of one benchmark, by pytest-benchmark's Stats (each sample one call: iterations 1)."""
    if not samples:
        raise ValueError("stats_of: no samples")
    try:
        from pytest_benchmark.stats import Stats
    except ImportError:
        raise PytestBenchmarkMissing(NEEDS_PYTEST_BENCHMARK) from None
    stats = Stats()
    for sample in samples:
        stats.update(sample)
    return {**stats.as_dict(), "data": list(samples), "iterations": 1}


def benchmark_entry(
    result: Result,
    *,
    name: str,
    fullname: str,
    params: dict | None,
    param: str | None,
    options: dict,
    group: str | None = None,
    extra_info: dict | None = None,
) -> dict:
    """One entry of "benchmarks" for a measured Result (extra_info: the test's own, kept beside ours)."""
    record = result.to_dict()
    record.pop("samples_s")
    return {
        "group": group,
        "name": name,
        "fullname": fullname,
        "params": params,
        "param": param,
        "extra_info": {
            **(extra_info or {}),
            "flops": result.flops,
            "bytes": result.bytes,
            "flops_per_s": result.flops_per_s,
            "bytes_per_s": result.bytes_per_s,
            "pct_peak": result.pct_peak,
            "device_name": result.device_name,
            ZHISUAN_KEY: record,
        },
        "options": options,
        "stats": stats_of(result.samples_s),
    }


def machine_info() -> dict:
    """The machine description pytest-benchmark writes (same keys, same sources)."""
    from zhisuan.bench.core import chips

    return {
        "node": platform.node(),
        "processor": platform.processor(),
        "machine": platform.machine(),
        "python_compiler": platform.python_compiler(),
        "python_implementation": platform.python_implementation(),
        "python_implementation_version": platform.python_version(),
        "python_version": platform.python_version(),
        "python_build": list(platform.python_build()),
        "release": platform.release(),
        "system": platform.system(),
        "cpu": dict(chips.cpu_info()),
    }


def document(entries: list[dict], commit_info: dict | None = None) -> dict:
    return {
        "machine_info": machine_info(),
        "commit_info": commit_info or {},
        "benchmarks": entries,
        "datetime": datetime.now(timezone.utc).isoformat(),
        "version": pytest_benchmark_version(),
    }


def write(path: str | Path, entries: list[dict], commit_info: dict | None = None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document(entries, commit_info), indent=4, default=str), encoding="utf-8")


# ---- reading ------------------------------------------------------------------------------------


def looks_like(path: Path) -> bool:
    """True for a pytest-benchmark JSON document; False for JSON Lines (one result per line).

    Decided by content, not by name: `zhisuan run --json results.json` writes JSON Lines too.
    pytest-benchmark writes indented JSON (the first line is a lone "{") or one object with
    "benchmarks"; a JSON Lines file starts with a complete result object.
    """
    if path.suffix == ".jsonl":
        return False
    with open(path, encoding="utf-8") as fh:
        first = next((line for line in fh if line.strip()), "")
    if first.strip() == "{":
        return True
    try:
        head = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(head, dict) and "benchmarks" in head


def read(path: str | Path) -> list[Result]:
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise ResultFileError(f"{path}: file is empty (no results)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultFileError(
            f"{path}: not valid JSON at line {exc.lineno} ({exc.msg}); truncated file?"
        ) from None
    except RecursionError:
        raise ResultFileError(f"{path}: JSON nested too deeply") from None
    except ValueError as exc:  # a number of more digits than Python converts
        raise ResultFileError(f"{path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ResultFileError(f"{path}: not a pytest-benchmark file (no 'benchmarks' list)")
    machine = data.get("machine_info") if isinstance(data.get("machine_info"), dict) else {}
    results = [
        _checked(path, i, entry, machine, data.get("datetime")) for i, entry in enumerate(data["benchmarks"])
    ]
    if not results:
        raise ResultFileError(f"{path}: file holds no benchmarks")
    return results


def _checked(path: Path, index: int, entry, machine: dict, when) -> Result:
    """_result, for an entry of an untrusted file: a wrong type is an error naming the benchmark."""
    from zhisuan.bench.core.schema import SchemaError, check_record

    where = f"{path}: benchmark {index + 1}"
    stats = entry.get("stats") or {} if isinstance(entry, dict) else None
    if not isinstance(stats, dict) or not isinstance(stats.get("data") or [], list):
        raise ResultFileError(f"{where}: expected an object with a 'stats' object holding a 'data' list")
    if not isinstance(entry.get("extra_info") or {}, dict):
        raise ResultFileError(f"{where}: 'extra_info' is not an object")
    if when is not None and not isinstance(when, str):
        raise ResultFileError(f"{path}: 'datetime' is not text")
    try:
        result = _result(path, index, entry, machine, when)
        check_record(result.to_dict())
    except SchemaError as exc:
        raise ResultFileError(f"{where} ({entry.get('fullname', '?')!r:.80}): {exc}") from None
    except ResultFileError:
        raise
    except ValueError as exc:  # a datetime that is not ISO 8601
        raise ResultFileError(f"{where}: {exc}") from None
    return result


def _result(path: Path, index: int, entry: dict, machine: dict, when: str | None) -> Result:
    where = f"{path}: benchmark {index + 1} ({entry.get('fullname', '?')})"
    stats = entry.get("stats") or {}
    samples = list(stats.get("data") or [])
    ours = (entry.get("extra_info") or {}).get(ZHISUAN_KEY)
    if isinstance(ours, dict):
        try:
            return Result.from_dict({**ours, "samples_s": samples})
        except ResultFileError as exc:
            raise ResultFileError(f"{where}: {exc}") from None
    if "fullname" not in entry:
        raise ResultFileError(f"{where}: entry lacks 'fullname'")
    cpu = machine.get("cpu") if isinstance(machine.get("cpu"), dict) else {}
    timestamp = datetime.fromisoformat(when).timestamp() if when else 0.0
    return Result(
        kind="pytest-benchmark",
        op=entry["fullname"],
        backend="pytest-benchmark",
        shape={},
        dtype="",
        device="cpu",
        device_name=cpu.get("brand_raw") or machine.get("processor") or machine.get("node") or "unknown",
        samples_s=samples,
        median_s=stats.get("median"),
        iqr_s=stats.get("iqr"),
        env={
            k: machine.get(k)
            for k in ("node", "python_version", "python_implementation", "release", "system")
        },
        extra={"source": "pytest-benchmark", "iterations": stats.get("iterations")},
        timestamp=timestamp,
    )
