"""Which commit and branch a run belongs to: SHAs short and full, the checkout `history add` runs in.

Pure rules (same_commit, branch_of_run, check_sha) and the one place that asks git (read_checkout).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from zhisuan.bench.core.errors import UsageError
from zhisuan.bench.core.results import Result


@dataclass(frozen=True)
class Checkout:
    """The git checkout `history add` runs in: its commit and branch (None when detached)."""

    sha: str | None
    branch: str | None


def read_checkout(folder: str | os.PathLike | None = None) -> Checkout | None:
    """The commit and branch of the git checkout at `folder` (default: here); None outside one."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() or None if out.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    if sha is None:
        return None
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    return Checkout(sha, None if branch == "HEAD" else branch)  # "HEAD": detached, on no branch


def same_commit(a: str, b: str) -> bool:
    """Two SHAs name the same commit when one is a prefix of the other (short vs full SHA)."""
    a, b = a.lower(), b.lower()
    return a.startswith(b) or b.startswith(a)


def branch_of_run(members: list[Result], given: str | None, checkout: Checkout | None) -> str | None:
    """The branch a run is stored under: `given` (--branch), else the one its results name in their
    environment (`git_branch`), else the checkout's branch at add time, but only when the checkout
    is at the run's commit (a checkout of another commit says nothing about where this run came from)."""
    if given:
        return given
    named = {r.env.get("git_branch") for r in members} - {None, "", "HEAD"}
    if len(named) == 1:
        return named.pop()
    if named or checkout is None or not checkout.branch:
        return None
    shas = {r.env.get("git_sha") for r in members} - {None, ""}
    if shas and not (checkout.sha and all(same_commit(s, checkout.sha) for s in shas)):
        return None
    return checkout.branch


def check_sha(sha: str) -> str:
    """A commit as given on the command line: 4 to 40 hex digits, lowercased."""
    text = sha.strip().lower()
    if not 4 <= len(text) <= 40 or any(c not in "0123456789abcdef" for c in text):
        raise UsageError(f"--commit {sha!r}: expected a git SHA, 4 to 40 hex digits (short or full)")
    return text
