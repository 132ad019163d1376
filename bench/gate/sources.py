"""Where the results of a comparison come from: result files, or a reference into the history.

- a path: whatever zhisuan.bench.core.result_files.read_results reads (zhisuan's JSON Lines,
  pytest-benchmark JSON, a directory of them);
- `history:NAME` (a pinned baseline), `history:run/RUN_ID`, `history:last` (the latest run) or
  `history:median/N` (per benchmark, the run with the median time among the last N runs),
  looked up in the history database.
"""

from __future__ import annotations

from zhisuan.bench.core.result_files import read_results
from zhisuan.bench.core.results import Result

HISTORY_PREFIX = "history:"


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
    return read_results(reference)
