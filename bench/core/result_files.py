"""Files of results: the JSON Lines writer, the one loader of every result file, CSV export.

Results are appended to the JSON Lines file and flushed as each arrives, so Ctrl-C or a crash keeps
everything measured so far. Each line goes to the file in one write; a write that fails part-way
(a full disk) is cut back off, so the file never ends in half a line. The file is created with its
first result: a run that crashes before measuring anything leaves no empty file behind.

read_results is the one loader every reader uses (report, compare, history, the collective model,
devicecheck): a JSON Lines file written by zhisuan, a pytest-benchmark JSON file (written by the
kernel_benchmark fixture or by pytest-benchmark), a directory of such files, or a list of any of
these. Every record passes the schema check (schema.py); an error names the file, line and field.
What a crash can leave behind is read around, with a warning on stderr: an empty file, and a
last line cut short (no newline at its end). Anything else malformed is an error.

refuse_overwrite is the one guard every command with output files uses: no output may be one of
its inputs, nor two outputs the same file.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from pathlib import Path

from zhisuan.bench.core import pytest_json
from zhisuan.bench.core.console import warn
from zhisuan.bench.core.errors import UsageError
from zhisuan.bench.core.results import Result, ResultFileError, shape_label


class ResultWriter:
    """Appends results to a JSON Lines file: one whole line per result, on disk when write returns.

    The file (and its folder) is created with the first result. A failed write raises UsageError
    naming the file, after cutting the file back to its last whole line.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.is_dir():
            raise UsageError(f"results file {self.path} is a directory; give a file name")
        if not _appendable(self.path):
            raise UsageError(
                f"results file {self.path} exists and is not a zhisuan results file: not appending to it"
            )
        self._fd: int | None = None

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UsageError(f"cannot write results to {self.path}: {exc.strerror or exc}") from None

    def write(self, result: Result) -> None:
        line = (json.dumps(result.to_dict(), default=str) + "\n").encode("utf-8")
        if self._fd is None:
            self._fd = self._open()
        end = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            written = os.write(self._fd, line)  # one write per line: no interleaving, no half lines
            while written < len(line):  # a short write (a signal, a nearly full disk): the rest
                written += os.write(self._fd, line[written:])
            os.fsync(self._fd)
        except OSError as exc:
            with contextlib.suppress(OSError):  # not a regular file (/dev/full): nothing to cut
                os.ftruncate(self._fd, end)  # cut the partial line off: the file stays whole lines
            raise UsageError(
                f"cannot write results to {self.path}: {exc.strerror or exc}; the results before this "
                "one are intact there"
            ) from None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _appendable(path: Path) -> bool:
    """True for a file results may be appended to: absent, empty, not a regular file (a device), or
    JSON Lines whose first line is a result record."""
    if not path.is_file():
        return True
    try:
        with open(path, "rb") as fh:
            first = fh.readline(1 << 20)
        return not first.strip() or "schema" in json.loads(first)
    except (OSError, ValueError, TypeError):
        return False


def read_results(paths: str | os.PathLike | list[str | os.PathLike]) -> list[Result]:
    """Every result in the given files and directories, in the order given.

    A directory contributes its *.jsonl and *.json files; a file is read as pytest-benchmark JSON
    when its content is that (pytest_json.looks_like), else as zhisuan's JSON Lines. An empty
    file is skipped with a warning; nothing at all to read is an error.
    """
    given = list(paths) if isinstance(paths, list | tuple) else [paths]
    if not given:
        raise ResultFileError("no result files given")
    files = []
    for item in given:
        path = Path(item)
        files += result_files_in(path) if path.is_dir() else [path]
        if path.is_dir() and not files:
            raise ResultFileError(f"{path}: directory holds no *.jsonl or *.json result files")
    if len(files) == 1 and _is_empty(files[0]):
        raise ResultFileError(f"{files[0]}: file holds no results (it is empty)")
    results = [r for file in files for r in _read_file(file)]
    if not results:
        raise ResultFileError(f"{', '.join(str(p) for p in given)}: holds no results (every file is empty)")
    return results


def _is_empty(path: Path) -> bool:
    try:
        return path.is_file() and not path.read_bytes().strip()
    except OSError:
        return False  # _read_file says why it cannot be read


def result_files_in(folder: Path) -> list[Path]:
    """The files read_results reads from a directory: its *.jsonl, then its *.json files."""
    return sorted(p for p in folder.glob("*.jsonl") if p.is_file()) + sorted(
        p for p in folder.glob("*.json") if p.is_file()
    )


def _read_file(path: Path) -> list[Result]:
    """One file's results; an empty file (a run that ended at once) is a warning and no results."""
    if not path.exists():
        raise ResultFileError(f"{path}: no such file")
    if not path.is_file():
        raise ResultFileError(f"{path}: not a regular file")
    try:
        if _is_empty(path):
            warn(f"{path}: empty file skipped (a run that ended before its first result?)")
            return []
        if pytest_json.looks_like(path):
            return pytest_json.read(path)
        return read_json_lines(path)
    except UnicodeDecodeError as exc:
        raise ResultFileError(f"{path}: not a text file ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ResultFileError(f"{path}: cannot read: {exc.strerror or exc}") from None


def read_json_lines(path: Path) -> list[Result]:
    """Every result of one JSON Lines file written by zhisuan.

    A last line without its newline that is not valid JSON is what a crash or a full disk leaves
    behind: it is skipped with a warning. A bad line anywhere else is an error.
    """
    results = []
    text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is no error
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):  # the last line, and no newline after it: a torn write
                warn(f"{path}:{number}: last line is cut short (a crash or a full disk?); skipped")
                continue
            raise ResultFileError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise ResultFileError(f"{path}:{number}: JSON nested too deeply") from None
        except ValueError as exc:  # a number of more digits than Python converts
            raise ResultFileError(f"{path}:{number}: {exc}") from None
        if not isinstance(data, dict):
            raise ResultFileError(f"{path}:{number}: expected a JSON object, got {type(data).__name__}")
        try:
            results.append(Result.from_dict(data))
        except ResultFileError as exc:
            raise ResultFileError(f"{path}:{number}: {exc}") from None
    if not results:
        raise ResultFileError(f"{path}: file holds no results")
    return results


def refuse_overwrite(outputs: dict[str, str | os.PathLike | None], inputs: list[str | os.PathLike]) -> None:
    """UsageError when an output (option name -> path) is an input or a file read from an input
    directory, or when two outputs are the same file: writing would destroy what is being read."""
    read: dict[Path, str] = {}
    for given in inputs:
        path = Path(given)
        files = result_files_in(path) if path.is_dir() else [path]
        read.update({_canonical(f): str(given) for f in files})
    seen: dict[Path, str] = {}
    for option, target in outputs.items():
        if target is None:
            continue
        where = _canonical(Path(target))
        if where in read:
            source = read[where]
            inside = "" if _canonical(Path(source)) == where else f" (read from {source})"
            raise UsageError(f"{option} {target} is an input{inside}; writing it would destroy it")
        if where in seen:
            raise UsageError(f"{option} and {seen[where]} name the same file {target}")
        seen[where] = option


def prepare_output(path: str | os.PathLike, option: str) -> Path:
    """The output path, its folder created; UsageError now, before any work, if it cannot be
    written: a directory given for a file, a folder that cannot be made, no write permission."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{option}: {path} is a directory; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{option}: cannot create the folder of {path}: {exc.strerror or exc}") from None
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"{option}: {path} is not writable")
    return path


def _canonical(path: Path) -> Path:
    """The path with links and '..' resolved, so two spellings of one file compare equal."""
    return Path(os.path.realpath(path))


CSV_FIELDS = [
    "run_id", "kind", "op", "backend", "shape", "dtype", "device", "device_name", "status",
    "median_s", "iqr_s", "cv", "flops_per_s", "bytes_per_s", "pct_peak", "pct_measured_peak",
    "max_abs_err", "tolerance", "passed", "interpreted", "n_samples",
]  # fmt: skip


def write_csv(results: list[Result], path: str | os.PathLike) -> None:
    try:
        _write_csv(results, path)
    except OSError as exc:
        raise UsageError(f"cannot write the CSV file {path}: {exc.strerror or exc}") from None


def _write_csv(results: list[Result], path: str | os.PathLike) -> None:
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
