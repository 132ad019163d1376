"""`python -m zhisuan.bench.collectives ...`: `zhisuan collective ...`, through the one dispatcher
(bench/cli.py), so errors and exit codes are the command's own."""

import sys

from zhisuan.bench.cli import main as zhisuan_main


def main(argv: list[str] | None = None) -> int:
    return zhisuan_main(["collective", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
