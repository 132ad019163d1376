"""`python -m zhisuan.bench.collectives ...`: the collective subcommand on its own (same as `zhisuan collective`)."""

import argparse
import sys

from zhisuan.bench.collectives import command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zhisuan.bench.collectives")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    command.add_parser(subparsers)
    args = parser.parse_args(["collective", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except ValueError as exc:
        print(f"zhisuan: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
