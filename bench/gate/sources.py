"""Where the results of a comparison come from: a file, a directory, or a history reference.

- a JSON Lines file written by `zhisuan run` (zhisuan.bench.core.results.read_results);
- a pytest-benchmark JSON file (written by the kernel_benchmark fixture or by pytest-benchmark);
- a directory: every *.jsonl and *.json in it;
- `history:NAME` (a pinned baseline), `history:run/RUN_ID`, `history:last` (the latest run) or
  `history:median/N` (per benchmark, the run with the median time among the last N runs),
  looked up in the history database.
"""

from __future__ import annotations

from pathlib import Path

from zhisuan.bench.core.results import Result, ResultFileError, read_results
from zhisuan.bench.gate import pytest_json

HISTORY_PREFIX = "history:"


def read_file(path: Path) -> list[Result]:
    if pytest_json.looks_like(path):
        return pytest_json.read(path)
    return read_results(path)


def read_path(path: str | Path) -> list[Result]:
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.jsonl")) + sorted(path.glob("*.json"))
        if not files:
            raise ResultFileError(f"{path}: directory holds no *.jsonl or *.json result files")
        return [r for f in files for r in read_file(f)]
    if not path.exists():
        raise ResultFileError(f"{path}: no such file")
    return read_file(path)


def load(reference: str, *, db: str | None = None, device_names: set[str] | None = None,
         exclude_runs: set[str] | None = None) -> list[Result]:  # fmt: skip
    """Results named by a path or a history reference.

    device_names / exclude_runs narrow history look-ups to the current run's devices and keep the
    current run itself (if it was already added) out of its own baseline.
    """
    if reference.startswith(HISTORY_PREFIX):
        from zhisuan.bench.gate.history import History

        with History(db) as history:
            return history.resolve(reference[len(HISTORY_PREFIX) :], device_names, exclude_runs)
    return read_path(reference)
