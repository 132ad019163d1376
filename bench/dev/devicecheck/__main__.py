"""`python -m zhisuan.bench.dev.devicecheck`: plan, print the device command, or run the call."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from zhisuan.bench.dev.devicecheck import plan


def parse_stages(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [n for n in names if n not in plan.STAGE_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown stage(s) {', '.join(unknown)}; stages: {', '.join(plan.STAGE_NAMES)}"
        )
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m zhisuan.bench.dev.devicecheck",
        description="The one GPU call: probe, build, GPU tests, benchmark, validate, pack; each stage under its cap.",
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--plan", action="store_true", help="print the stages with their caps and the total")
    what.add_argument("--print-command", action="store_true", help="print the device tool's command")
    what.add_argument("--out", type=Path, help="an empty folder for what comes back (on the device: $OUT)")
    parser.add_argument("--work", type=Path, help="folder for everything else (default: a new temporary one)")
    parser.add_argument("--stages", type=parse_stages,
                        help=f"comma-separated subset, run in plan order; {', '.join(plan.ALWAYS)} always run "
                        f"(default: all: {','.join(plan.STAGE_NAMES)}); with --print-command: the command for those")  # fmt: skip
    parser.add_argument("--sizes", choices=("auto", "quick", "tiny"), default="auto",
                        help="benchmark and validate sizes; auto: quick on a GPU, tiny on a CPU")  # fmt: skip
    parser.add_argument("--build-mode", choices=("build", "verify"), default="build",
                        help="verify: do not build, only check the extensions already in the tree")  # fmt: skip
    args = parser.parse_args(argv)
    if args.plan:
        print("\n".join(plan.plan_lines()))
        return 0
    if args.print_command:
        subset = f" --stages {','.join(args.stages)}" if args.stages else ""
        print(plan.device_command(args=plan.OUT_ARGUMENT + subset))
        return 0
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"--out {args.out} is not empty: give an empty or new folder")
    from zhisuan.bench.dev.devicecheck.orchestrate import Call, run_call

    # Absolute: the stages run in the repository root, wherever this was started.
    out = args.out.resolve()
    work = (args.work or Path(tempfile.mkdtemp(prefix="zhisuan-devicecheck-"))).resolve()
    if work.is_relative_to(out):
        parser.error("--work must lie outside --out (everything in --out comes back)")
    call = Call(out=out, work=work, sizes=args.sizes, build_mode=args.build_mode)
    selected = plan.STAGE_NAMES if args.stages is None else (*args.stages, *plan.ALWAYS)
    return run_call(call, tuple(selected))


if __name__ == "__main__":
    sys.exit(main())
