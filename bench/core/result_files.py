"""Files of results: the JSON Lines writer, the one loader of every result file, CSV export.

Results are appended to the JSON Lines file and flushed as each arrives, so Ctrl-C or a crash keeps
everything measured so far. read_results is the one loader every reader uses (report, compare,
history, the collective model, devicecheck): a JSON Lines file written by zhisuan, a
pytest-benchmark JSON file (written by the kernel_benchmark fixture or by pytest-benchmark), a
directory of such files, or a list of any of these.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from zhisuan.bench.core import pytest_json
from zhisuan.bench.core.results import Result, ResultFileError, shape_label


class ResultWriter:
    """Appends results to a JSON Lines file, one flushed line per result."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115  (closed by close())

    def write(self, result: Result) -> None:
        self._file.write(json.dumps(result.to_dict(), default=str) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_results(paths: str | os.PathLike | list[str | os.PathLike]) -> list[Result]:
    """Every result in the given files and directories, in the order given.

    A directory contributes its *.jsonl and *.json files; a file is read as pytest-benchmark JSON
    when its content is that (pytest_json.looks_like), else as zhisuan's JSON Lines.
    """
    if isinstance(paths, list | tuple):
        if not paths:
            raise ResultFileError("no result files given")
        return [r for path in paths for r in read_results(path)]
    path = Path(paths)
    if path.is_dir():
        files = sorted(path.glob("*.jsonl")) + sorted(path.glob("*.json"))
        if not files:
            raise ResultFileError(f"{path}: directory holds no *.jsonl or *.json result files")
        return [r for f in files for r in read_results(f)]
    if not path.exists():
        raise ResultFileError(f"{path}: no such file")
    if pytest_json.looks_like(path):
        return pytest_json.read(path)
    return read_json_lines(path)


def read_json_lines(path: Path) -> list[Result]:
    """Every result of one JSON Lines file written by zhisuan."""
    results = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ResultFileError(
                    f"{path}:{number}: not valid JSON ({exc.msg}); truncated file?"
                ) from None
            if not isinstance(data, dict):
                raise ResultFileError(f"{path}:{number}: expected a JSON object, got {type(data).__name__}")
            try:
                results.append(Result.from_dict(data))
            except ResultFileError as exc:
                raise ResultFileError(f"{path}:{number}: {exc}") from None
    if not results:
        raise ResultFileError(f"{path}: file holds no results")
    return results


CSV_FIELDS = [
    "run_id", "kind", "op", "backend", "shape", "dtype", "device", "device_name", "status",
    "median_s", "iqr_s", "cv", "flops_per_s", "bytes_per_s", "pct_peak", "pct_measured_peak",
    "max_abs_err", "tolerance", "passed", "interpreted", "n_samples",
]  # fmt: skip


def write_csv(results: list[Result], path: str | os.PathLike) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for r in results:
            row = {k: getattr(r, k) for k in CSV_FIELDS if hasattr(r, k)}
            row.update(
                shape=shape_label(r.shape),
                max_abs_err=r.check.get("max_abs_err"),
                tolerance=r.check.get("tolerance"),
                passed=r.check.get("passed"),
                n_samples=len(r.samples_s),
            )
            writer.writerow(row)
