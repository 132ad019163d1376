"""Exit codes of every zhisuan command, and the type of a user's error, in one place.

The codes mean the same in every command, so a script or a scheduler can act on them alike:
"""

from __future__ import annotations

EXIT_OK = 0  # done: nothing failed, no regression, every check PASS or WARN
EXIT_FAILED = 1  # measured and found wanting: a regression, a FAIL verdict, wrong data, a failed check
EXIT_USAGE = 2  # not measured as asked: bad arguments or input files, runs that cannot be compared
EXIT_CRASH = 3  # a rank of a multi-process run died or hung (named in the output)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT); everything measured so far is on disk


class UsageError(ValueError):
    """A mistake in the command line or its inputs: reported in one line, exit EXIT_USAGE."""
