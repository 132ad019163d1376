"""The `zhisuan` command (also `python -m zhisuan.bench`): the dispatcher of its subcommands.

Subcommands live in the modules listed in COMMAND_MODULES, each exposing add_parser(subparsers)
(which sets func=run on its parser) and run(args) -> exit code (bench/core/errors.py). A user
error (bad shape, unknown backend, unreadable file, unusable output path, a device that is not
there, a shape that cannot fit in memory) is raised as UsageError where it is found, at the
boundary, and printed here as one line, `zhisuan: error: ...`, exit EXIT_USAGE. Anything else is a
bug of zhisuan and keeps its traceback: no broad `except ValueError` turns a bug into a user error.
The argument types the subcommands share are here too.
"""

from __future__ import annotations

import argparse
import importlib
import math
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
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive, finite number of seconds, got {text!r}")
    return value


def seed_arg(text: str) -> int:
    """A seed torch's generators take: an integer from 0 to 2**63 - 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"a seed is an integer from 0 to 2**63 - 1, got {text!r}")
    return value


def device_arg(text: str) -> str:
    """A torch device string naming a device of this machine: cpu, cuda, cuda:N, npu:N, xpu, ...
    (any type torch knows or a vendor plug-in adds; 'hip' is 'cuda' on ROCm)."""
    from zhisuan.bench.core.chips import check_device

    try:
        return check_device(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def device_type_arg(text: str) -> str:
    """A device type of this machine (cpu, cuda, npu, xpu, ...), for commands whose ranks each take
    the device of their local rank."""
    import torch

    device = torch.device(device_arg(text))
    if device.index is not None:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a device type ({device.type}); each rank takes the device of its local rank"
        )
    return device.type


def default_device() -> str:
    """The accelerator torch has here (built in or from a plug-in), else cpu."""
    from zhisuan.bench.core.accel import default_type

    return default_type()


# ---- entry point -------------------------------------------------------------------------------


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (no usage block before it), exit EXIT_USAGE."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(  # add_subparsers makes every subcommand's parser of the same class
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
    except UsageError as exc:
        print(f"zhisuan: error: {safe_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("zhisuan: interrupted; results measured so far are on disk", file=sys.stderr)
        return EXIT_INTERRUPTED


def safe_line(exc: Exception) -> str:
    """The error's message with control characters made visible: it may quote a file's content."""
    return "".join(c if c.isprintable() or c == " " else f"\\x{ord(c):02x}" for c in str(exc))


if __name__ == "__main__":
    sys.exit(main())
