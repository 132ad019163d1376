"""History of results in one SQLite file: runs, their results (every sample kept), pinned baselines.

The file is opened in WAL mode with a busy timeout, and each `add` is one IMMEDIATE transaction:
several processes (nodes of a cluster writing to a shared file, parallel CI jobs) can add at the
same time; each waits its turn instead of failing or corrupting the file. (SQLite's locking needs
a local or properly locking file system; WAL does not work over NFS.)

Each run keeps the commit it measured (the results' `git_sha`) and the branch it belongs to, so
runs can be found by commit (`runs_of_commit`) and a baseline taken as the last N runs of a branch
(`last_runs`). Every insert goes through `add`.

Path: --db, else $ZHISUAN_HISTORY_DB, else ~/.zhisuan/history.db.

Nothing invalid enters: every record passes the schema check (core/schema.py) before it is
stored, and again when it is read back (a database written by another tool or edited by hand names
the stored result that is wrong instead of failing deep inside a command).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from zhisuan.bench.core.errors import UsageError
from zhisuan.bench.core.results import Result, ResultFileError, new_run_id, shape_label
from zhisuan.bench.core.schema import SchemaError, check_record
from zhisuan.bench.gate import run_spread
from zhisuan.bench.gate.commits import Checkout, branch_of_run, check_sha, same_commit

ENV_VAR = "ZHISUAN_HISTORY_DB"
DEFAULT_PATH = "~/.zhisuan/history.db"
DB_VERSION = 2  # 2: runs.branch
BUSY_TIMEOUT_S = 60.0
RESERVED_NAMES = ("last",)

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    timestamp REAL NOT NULL,        -- when the run measured (its earliest result)
    added_at REAL NOT NULL,
    device_names TEXT NOT NULL,     -- JSON list
    git_sha TEXT,                   -- the commit (several, comma-separated, if the results disagree)
    source TEXT,
    branch TEXT
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    bench_key TEXT NOT NULL,        -- JSON of Result.key()
    label TEXT NOT NULL,            -- op/backend/shape/dtype, for look-ups by pattern
    device_name TEXT NOT NULL,
    status TEXT NOT NULL,
    median_s REAL,
    timestamp REAL NOT NULL,
    record TEXT NOT NULL,           -- the whole Result as JSON
    UNIQUE (run_id, bench_key)
);
CREATE INDEX IF NOT EXISTS results_by_key ON results (bench_key, timestamp);
CREATE TABLE IF NOT EXISTS baselines (
    name TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    set_at REAL NOT NULL
);
"""


def default_path() -> Path:
    return Path(os.environ.get(ENV_VAR) or DEFAULT_PATH).expanduser()


def label(result: Result) -> str:
    """'matmul/cpp/M=256,N=256,K=256/fp32': how `history show` and `plot` name a benchmark (with
    the variant where there is one: 'all_reduce/gloo/bytes=1024,count=256,ranks=2/fp32/in-place, op=sum')."""
    text = f"{result.op}/{result.backend}/{shape_label(result.shape)}/{result.dtype}"
    return f"{text}/{result.variant}" if result.variant else text


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    timestamp: float
    device_names: list[str]
    git_sha: str | None
    source: str | None
    n_results: int
    branch: str | None = None

    @property
    def shas(self) -> list[str]:
        return self.git_sha.split(",") if self.git_sha else []


@dataclass(frozen=True)
class AddedRun:
    run_id: str
    added: int
    already_present: int
    branch: str | None = None  # the branch the run is stored under


class History:
    def __init__(self, path: str | os.PathLike | None = None, timeout_s: float = BUSY_TIMEOUT_S):
        self.path = Path(path).expanduser() if path else default_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: transactions are opened explicitly (BEGIN IMMEDIATE), so a writer
            # takes the write lock up front and waits for it, rather than failing half-way through.
            self.db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise UsageError(f"history database {self.path}: cannot open ({exc})") from None
        try:
            self.db.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            self.journal_mode = self.db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self._create_schema()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise UsageError(f"history database {self.path}: not a usable SQLite database ({exc})") from None

    def _version(self) -> int:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > DB_VERSION:
            raise UsageError(
                f"history database {self.path} has version {version}; this zhisuan reads up to {DB_VERSION}"
            )
        return version

    def _create_schema(self) -> None:
        if self._version() == DB_VERSION:
            return
        with _Transaction(self.db, self.path):
            version = self._version()  # again, under the write lock: another process may have done it
            if version == 0:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
            elif version == 1:  # a file of an older zhisuan: its runs get no branch
                self.db.execute("ALTER TABLE runs ADD COLUMN branch TEXT")
            self.db.execute(f"PRAGMA user_version = {DB_VERSION}")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- writing ---------------------------------------------------------------------------------

    def add(self, results: list[Result], source: str | None = None, branch: str | None = None,
            checkout: Checkout | None = None) -> list[AddedRun]:  # fmt: skip
        """Store results, grouped by run_id (results without one get a fresh id together).

        The one way results enter the database. A result already stored (same run, same benchmark)
        is skipped, so adding a file twice is harmless. Each run is one transaction. Its branch:
        see branch_of_run (a run already stored keeps the branch it was stored with).
        """
        fresh_id = new_run_id()
        runs: dict[str, list[Result]] = {}
        for number, r in enumerate(results, start=1):
            try:
                check_record(r.to_dict())
            except SchemaError as exc:
                raise ResultFileError(
                    f"result {number} ({r.op!r:.60} {r.backend!r:.60}): {exc}; nothing was added"
                ) from None
            runs.setdefault(r.run_id or fresh_id, []).append(r)
        report = []
        for run_id, members in runs.items():
            devices = sorted({r.device_name for r in members})
            shas = {str(r.env.get("git_sha")) for r in members if r.env.get("git_sha") not in (None, "")}
            run_branch = branch_of_run(members, branch, checkout)
            with _Transaction(self.db, self.path):
                self.db.execute(
                    "INSERT OR IGNORE INTO runs (run_id, timestamp, added_at, device_names, git_sha, source, "
                    "branch) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (run_id, min(r.timestamp for r in members), time.time(), json.dumps(devices),
                     ",".join(sorted(shas)) or None, source, run_branch),
                )  # fmt: skip
                added = 0
                for r in members:
                    record = {**r.to_dict(), "run_id": run_id}
                    cursor = self.db.execute(
                        "INSERT OR IGNORE INTO results (run_id, bench_key, label, device_name, status, "
                        "median_s, timestamp, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (run_id, json.dumps(list(r.key())), label(r), r.device_name, r.status, r.median_s,
                         r.timestamp, json.dumps(record, default=str)),
                    )  # fmt: skip
                    added += cursor.rowcount
                stored = self.db.execute("SELECT branch FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0]
            report.append(AddedRun(run_id, added, len(members) - added, stored))
        return report

    def set_baseline(self, name: str, run: str | None = None) -> str:
        """Pin run (an id or a unique prefix; default: the latest run) as baseline `name`."""
        if not name or "/" in name or name in RESERVED_NAMES:
            raise UsageError(f"baseline name {name!r} is not allowed (no '/', not one of {RESERVED_NAMES})")
        run_id = self.find_run(run) if run else self.latest_run().run_id
        with _Transaction(self.db, self.path):
            self.db.execute("INSERT OR REPLACE INTO baselines VALUES (?, ?, ?)", (name, run_id, time.time()))
        return run_id

    # ---- reading ---------------------------------------------------------------------------------

    def runs(self, device_names: set[str] | None = None, exclude: set[str] | None = None,
             branch: str | None = None) -> list[RunInfo]:  # fmt: skip
        """Runs, oldest first (by when they measured); only those on one of device_names, if given,
        and of `branch`, if given."""
        rows = self.db.execute(
            "SELECT runs.run_id, runs.timestamp, device_names, git_sha, source, COUNT(results.id), branch "
            "FROM runs LEFT JOIN results USING (run_id) GROUP BY runs.run_id ORDER BY runs.timestamp, runs.run_id"
        ).fetchall()
        runs = [RunInfo(r[0], r[1], _json_list(r[2]), r[3], r[4], r[5], r[6]) for r in rows]
        if device_names:
            runs = [r for r in runs if set(r.device_names) & device_names]
        if branch is not None:
            runs = [r for r in runs if r.branch == branch]
        return [r for r in runs if not exclude or r.run_id not in exclude]

    def branches(self) -> list[str]:
        rows = self.db.execute("SELECT DISTINCT branch FROM runs WHERE branch IS NOT NULL ORDER BY branch")
        return [row[0] for row in rows]

    def last_runs(self, n: int, branch: str | None = None, device_names: set[str] | None = None,
                  exclude: set[str] | None = None) -> list[RunInfo]:  # fmt: skip
        """The last n runs (of `branch`, on one of device_names, other than `exclude`), oldest first."""
        if n < 1:
            raise UsageError(f"the number of runs must be at least 1, got {n}")
        runs = self.runs(device_names, exclude, branch)[-n:]
        if not runs:
            where = f" of branch {branch!r}" if branch is not None else ""
            where += f" on {', '.join(sorted(device_names))}" if device_names else ""
            known = (
                f" (branches: {', '.join(self.branches()) or 'none recorded'})" if branch is not None else ""
            )
            raise UsageError(f"history {self.path} holds no runs{where} to take a baseline from{known}")
        return runs

    def runs_of_commit(self, sha: str, device_names: set[str] | None = None,
                       exclude: set[str] | None = None) -> list[RunInfo]:  # fmt: skip
        """Every run that measured commit `sha` (short or full), oldest first.

        An error when no run has it, when it is ambiguous (a prefix of two different stored SHAs),
        or when none of its runs is on device_names / outside `exclude`.
        """
        sha = check_sha(sha)
        runs = [r for r in self.runs() if any(same_commit(s, sha) for s in r.shas)]
        if not runs:
            raise UsageError(f"history {self.path}: no run of commit {sha} (zhisuan history runs lists them)")
        commits = sorted({s for r in runs for s in r.shas if same_commit(s, sha)})
        if any(not same_commit(a, b) for a in commits for b in commits):
            raise UsageError(
                f"commit {sha} is ambiguous: it starts {', '.join(commits[:5])}; give more digits"
            )
        kept = [r for r in runs if (not device_names or set(r.device_names) & device_names)
                and not (exclude and r.run_id in exclude)]  # fmt: skip
        if not kept:
            where = f" on {', '.join(sorted(device_names))}" if device_names else ""
            raise UsageError(
                f"commit {sha} has {len(runs)} run(s), none{where} other than the current results"
            )
        return kept

    def results_of(self, runs: list[RunInfo]) -> list[Result]:
        return [r for run in runs for r in self.run_results(run.run_id)]

    def latest_run(self, device_names: set[str] | None = None, exclude: set[str] | None = None) -> RunInfo:
        runs = self.runs(device_names, exclude)
        if not runs:
            where = f" on {', '.join(sorted(device_names))}" if device_names else ""
            raise UsageError(f"history {self.path} holds no runs{where}")
        return runs[-1]

    def find_run(self, run: str) -> str:
        """The run id that is `run` or starts with it; an error if none or several match."""
        if not run:
            raise UsageError(f"history {self.path}: give a run id (or a unique prefix of one)")
        ids = [r.run_id for r in self.runs()]
        if run in ids:
            return run
        matches = [i for i in ids if i.startswith(run)]
        if len(matches) != 1:
            problem = "no run" if not matches else f"{len(matches)} runs ({', '.join(matches[:5])})"
            raise UsageError(f"history {self.path}: {problem} match run id {run!r}")
        return matches[0]

    def baselines(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT name, run_id FROM baselines ORDER BY name").fetchall())

    def run_results(self, run_id: str) -> list[Result]:
        rows = self.db.execute("SELECT id, record FROM results WHERE run_id = ? ORDER BY id", (run_id,))
        return [self._stored(row_id, record) for row_id, record in rows]

    def _stored(self, row_id: int, record: str) -> Result:
        """A stored record as a Result, checked like any file's (the database may be hand-edited)."""
        try:
            return Result.from_dict(json.loads(record))
        except (ValueError, TypeError, RecursionError) as exc:  # JSON errors, ResultFileError
            raise ResultFileError(
                f"history {self.path}: stored result {row_id} is not a valid record: {exc}"
            ) from None

    def median_of_last(self, n: int, device_names: set[str] | None = None,
                       exclude: set[str] | None = None) -> list[Result]:  # fmt: skip
        """Per benchmark, the result whose median time is the median over the last n runs.

        A real run's samples (not pooled ones), so the comparison sets like against like; the
        median run keeps one unusually fast or slow run from becoming the baseline. Failed results
        are left out; a benchmark that only failed in those runs has no baseline.
        """
        results = self.results_of(self.last_runs(n, None, device_names, exclude))
        return run_spread.representatives(results, current=False)

    def resolve(self, reference: str, device_names: set[str] | None = None,
                exclude: set[str] | None = None) -> list[Result]:  # fmt: skip
        """Results named by a reference: NAME (pinned baseline), run/ID, last, median/N."""
        if reference == "last":
            return self.run_results(self.latest_run(device_names, exclude).run_id)
        if reference.startswith("run/"):
            return self.run_results(self.find_run(reference[len("run/") :]))
        if reference.startswith("median/"):
            text = reference[len("median/") :]
            if not text.isdigit():
                raise UsageError(
                    f"history reference {reference!r}: expected median/N with N a number of runs"
                )
            return self.median_of_last(int(text), device_names, exclude)
        baselines = self.baselines()
        if reference not in baselines:
            known = ", ".join(baselines) or "none pinned yet (zhisuan history baseline set NAME)"
            raise UsageError(
                f"history reference {reference!r}: no such baseline (baselines: {known}; "
                "or use last, run/RUN_ID, median/N)"
            )
        return self.run_results(baselines[reference])

    def labels(
        self, pattern: str = "*", device: str = "*", branch: str | None = None
    ) -> list[tuple[str, str]]:
        """(label, device name) of every stored benchmark matching the glob patterns (and measured on
        `branch`, if given)."""
        query = "SELECT DISTINCT label, device_name FROM results JOIN runs USING (run_id)"
        where, params = _branch_filter(branch)
        rows = self.db.execute(f"{query}{where} ORDER BY label, device_name", params)
        return [(lab, dev) for lab, dev in rows if fnmatchcase(lab, pattern) and fnmatchcase(dev, device)]

    def trend(self, pattern: str, device: str = "*", branch: str | None = None) -> list[Result]:
        """Every result of the one benchmark matching pattern (and device, and branch), oldest first."""
        matches = self.labels(pattern, device, branch)
        if not matches:
            on_branch = f" in runs of branch {branch!r}" if branch is not None else ""
            raise UsageError(
                f"history {self.path}: no benchmark matches {pattern!r} on device {device!r}{on_branch}"
            )
        if len(matches) > 1:
            listed = "; ".join(f"{lab} on {dev}" for lab, dev in matches[:8])
            more = f" and {len(matches) - 8} more" if len(matches) > 8 else ""
            raise UsageError(
                f"{pattern!r} matches {len(matches)} benchmarks ({listed}{more}); narrow the pattern or --device"
            )
        return self.series(*matches[0], branch)

    def series(self, label: str, device: str, branch: str | None = None) -> list[Result]:
        """Every result of one benchmark on one device (of `branch`, if given), in the order of
        their runs (when each run measured), then as stored."""
        where, params = _branch_filter(branch)
        rows = self.db.execute(
            "SELECT results.id, record FROM results JOIN runs USING (run_id)"
            f"{where or ' WHERE 1'} AND label = ? AND device_name = ? "
            "ORDER BY runs.timestamp, runs.run_id, results.id",
            (*params, label, device),
        )
        return [self._stored(row_id, record) for row_id, record in rows]


def _json_list(text: str) -> list:
    try:
        value = json.loads(text)
    except (ValueError, TypeError):
        return []
    return value if isinstance(value, list) else []


def _branch_filter(branch: str | None) -> tuple[str, tuple]:
    return (" WHERE runs.branch = ?", (branch,)) if branch is not None else ("", ())


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on an exception. A write the database refuses (a
    read-only file, a full disk) is a UsageError naming the file; nothing of the transaction stays."""

    def __init__(self, db: sqlite3.Connection, path: Path):
        self.db, self.path = db, path

    def __enter__(self) -> None:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise UsageError(f"history database {self.path}: cannot write ({exc})") from None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self.db.execute("ROLLBACK")
        else:
            try:
                self.db.execute("COMMIT")
            except sqlite3.OperationalError as failed:
                self.db.execute("ROLLBACK")
                raise UsageError(f"history database {self.path}: cannot write ({failed})") from None
        if isinstance(exc, sqlite3.OperationalError):  # read-only file, full disk, locked too long
            raise UsageError(f"history database {self.path}: cannot write ({exc})") from None
        return False
