"""What the call leaves in its output folder, and the one JSON Lines file of its own records.

At most 8 files come back from the device machine, none deeper than 2 folders. So the output
folder holds only the files named here, all at its top level and each written as the call goes
(a call cut short still returns them); everything else (per-stage logs, nvidia-smi -q, pip list,
validate's report) goes to a work folder that the last stage packs into one tar.gz.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]  # bench/dev/devicecheck/files.py -> the repository
MAX_FILES_BACK = 8

SUMMARY = "summary.md"  # for people: rewritten after every stage
RECORDS = "devicecheck.jsonl"  # stage, extension, collected and test records, streamed
ENVIRONMENT = "environment.json"  # the probe's reading of the machine
RESULTS = "results.jsonl"  # the benchmark's Result records (zhisuan report / compare read them)
COLLECTIVE = "collective.jsonl"  # the IPC all-reduce sweep's records
VALIDATE = "validate.jsonl"  # zhisuan validate's records
LOG = "devicecheck.log"  # every stage's output in order (cut to its head and tail when large)
TARBALL = "devicecheck.tar.gz"  # the work folder and the full log: everything else

KEPT = (SUMMARY, RECORDS, ENVIRONMENT, RESULTS, COLLECTIVE, VALIDATE, LOG, TARBALL)

# Work folder layout (packed into the tarball).
LOGS_DIR = "logs"  # one <stage>.log each
BUILD_JSON = "build.json"
NVIDIA_SMI_Q = "nvidia-smi-q.txt"
PIP_LIST = "pip-list.txt"
VALIDATE_REPORT = "validate-report"


def append_record(path: Path, record: dict) -> None:
    """One JSON line, flushed at once: the record survives whatever happens next."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, default=str) + "\n")
        f.flush()


def read_records(path: Path, kind: str | None = None) -> list[dict]:
    """The records of a JSON Lines file (of one kind, if given); a torn last line is skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill: the records before it stand
        if isinstance(record, dict) and (kind is None or record.get("kind") == kind):
            records.append(record)
    return records


def parse_out_and_work(description: str, argv: list[str] | None) -> argparse.Namespace:
    """The arguments of a stage that writes into the output folder and the work folder."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", required=True, type=Path, help="the call's output folder (comes back)")
    parser.add_argument("--work", required=True, type=Path, help="the call's work folder (packed)")
    return parser.parse_args(argv)
