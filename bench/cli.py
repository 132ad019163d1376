"""The `zhisuan` command (also `python -m zhisuan.bench`): the dispatcher of its subcommands.

Subcommands live in the modules listed in COMMAND_MODULES, each exposing add_parser(subparsers)
(which sets func=run on its parser) and run(args) -> exit code (bench/core/errors.py). A user
error (bad shape, unknown backend, unreadable file) prints one line, `zhisuan: error: ...`, and
exits EXIT_USAGE: never a traceback. The argument types the subcommands share are here too.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from zhisuan.bench.core.errors import EXIT_INTERRUPTED, EXIT_USAGE, UsageError

COMMAND_MODULES: list[str] = [
    "zhisuan.bench.harness.command",
    "zhisuan.bench.collectives.command",
    "zhisuan.bench.collectives.model_command",
    "zhisuan.bench.gate.compare_command",
    "zhisuan.bench.gate.ab_command",
    "zhisuan.bench.gate.history_command",
    "zhisuan.bench.report.command",
    "zhisuan.bench.validate.command",
]


def parse_csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


# ---- entry point -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zhisuan",
        description="Benchmark and kernel suite for AI computing centers: achieved vs peak, checked.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except (UsageError, ValueError, FileNotFoundError) as exc:
        print(f"zhisuan: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("zhisuan: interrupted; results measured so far are on disk", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
