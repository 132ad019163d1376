"""pytest plugin: one JSON line per test outcome, written the moment it is known.

    ZHISUAN_DEVICECHECK_RECORDS=OUT/devicecheck.jsonl ZHISUAN_DEVICECHECK_STAGE=gpu-tests \\
        pytest -p zhisuan.bench.dev.devicecheck.pytest_stream ...

Records: one `collected` (the test ids, so a stage cut at its cap can tell what never ran) and
one `test` per test (outcome, phase, seconds, the end of its report). Under pytest-xdist only the
controller writes (the workers report to it), so each test is written once.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zhisuan.bench.dev.devicecheck import files

RECORDS_ENV = "ZHISUAN_DEVICECHECK_RECORDS"
STAGE_ENV = "ZHISUAN_DEVICECHECK_STAGE"
MESSAGE_CHARS = 1500  # the end of a failure's report: where the assertion and the error are


class StreamRecords:
    def __init__(self, path: Path, stage: str):
        self.path, self.stage = path, stage
        self.collected_written = False

    def write(self, record: dict) -> None:
        files.append_record(self.path, {**record, "stage": self.stage})

    def write_collected(self, nodeids: list[str]) -> None:
        if not self.collected_written:  # every xdist worker collects the same ids
            self.collected_written = True
            self.write({"kind": "collected", "nodeids": nodeids})

    def pytest_collection_finish(self, session) -> None:
        if session.items:  # under xdist the controller collects nothing: the workers report
            self.write_collected([item.nodeid for item in session.items])

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids) -> None:
        self.write_collected(list(ids))

    def pytest_collectreport(self, report) -> None:
        if report.failed:  # a test module that cannot be imported: every test in it is lost
            self.write({"kind": "test", "nodeid": report.nodeid, "outcome": "error", "when": "collect",
                        "seconds": 0.0, "message": report.longreprtext[-MESSAGE_CHARS:]})  # fmt: skip

    def pytest_runtest_logreport(self, report) -> None:
        # A test's outcome is its call phase; setup and teardown count only when they did not
        # pass (a skip is decided at setup; an error in a fixture is the test's error).
        if report.when != "call" and report.passed:
            return
        outcome = report.outcome if report.when == "call" else ("skipped" if report.skipped else "error")
        message = ""
        if report.skipped and isinstance(report.longrepr, tuple):
            message = str(report.longrepr[-1])  # (file, line, reason)
        elif not report.passed:
            message = report.longreprtext[-MESSAGE_CHARS:]
        self.write({"kind": "test", "nodeid": report.nodeid, "outcome": outcome, "when": report.when,
                    "seconds": round(report.duration, 3), "message": message})  # fmt: skip


def pytest_configure(config) -> None:
    path = os.environ.get(RECORDS_ENV)
    if path and not hasattr(config, "workerinput"):  # not in an xdist worker
        config.pluginmanager.register(
            StreamRecords(Path(path), os.environ.get(STAGE_ENV, "")), "zhisuan-stream"
        )
