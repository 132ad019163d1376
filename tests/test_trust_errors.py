"""Tracebacks and unclear errors (issue 12, class 4): a user's mistake is a UsageError raised where
it is found and printed as one line, exit 2; a bug inside zhisuan keeps its traceback."""

import os
import stat
import subprocess
import sys

import pytest

from zhisuan import bench
from zhisuan.bench import cli
from zhisuan.bench.cli import main
from zhisuan.bench.core import memory
from zhisuan.bench.core.errors import EXIT_USAGE, UsageError


def one_line_error(argv, capsys, *, expect: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == EXIT_USAGE, err
    assert "Traceback" not in err and expect in err, err
    return err


@pytest.mark.parametrize(
    "argv,expect",
    [
        (
            ["run", "attention", "--shape", "1x6x4x16x16x8"],
            "heads (6) must be a multiple of the kv heads (4)",
        ),
        (["run", "attention", "--shape", "1x0x16x8"], "heads must be at least 1, got 0"),
        (["run", "attention", "--shape", "1x2x16x0"], "head_dim must be at least 1, got 0"),
        (["run", "matmul", "--shape", "0x8x8"], "M must be at least 1, got 0"),
        (["run", "matmul", "--shape", "97x1x0"], "K must be at least 1, got 0"),
        (["run", "matmul", "--shape", "60000"], "needs about"),
        (["run", "matmul", "--json", "/", "--shape", "8"], "is a directory"),
    ],
)
def test_bad_shapes_and_outputs_are_one_line_errors(argv, expect, capsys):
    one_line_error(argv, capsys, expect=expect)


@pytest.mark.parametrize(
    "argv,expect",
    [
        (["run", "--time-budget", "nan"], "expected a positive, finite number of seconds, got 'nan'"),
        (["run", "--time-budget", "inf"], "expected a positive, finite number of seconds, got 'inf'"),
        (["run", "--device", "bogus"], "device 'bogus': torch has no such device type"),
        (["run", "--device", "meta"], "device 'meta': torch has no device module for it"),
        (["run", "--seed", str(2**70)], "a seed is an integer from 0 to 2**63 - 1"),
        (["compare", "a", "b", "--alpha", "1.5"], "alpha must be between 0 and 1"),
        (["compare", "a", "b", "--threshold", "nan%"], "is not a finite number"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(argv, expect, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == EXIT_USAGE and expect in err and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith(f"zhisuan {argv[0]}: error: ")  # one line, no usage block


def test_a_device_that_is_not_here_is_named(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SystemExit):
        main(["run", "matmul", "--device", "cuda", "--shape", "8"])
    assert "device 'cuda': no cuda device here" in capsys.readouterr().err
    with pytest.raises(UsageError, match="no cuda device here"):
        bench.run("matmul", device="cuda", shapes=["8"])


def test_memory_is_estimated_before_anything_is_allocated(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: (1 << 20, "in this test"))
    with pytest.raises(
        UsageError, match=r"matmul shape 1025x1025x1025 \(fp32\) needs about .* more than the"
    ):
        bench.run("matmul", backends=["torch"], shapes=["1025"], iters=1)
    bench.run("matmul", backends=["torch"], shapes=["97x7x1"], iters=1)  # small enough


def test_the_bench_api_checks_its_arguments():
    with pytest.raises(UsageError, match="time_budget_s must be a positive, finite number"):
        bench.measure(lambda: None, time_budget_s=float("nan"))
    with pytest.raises(UsageError, match="iters must be an integer of at least 1"):
        bench.measure(lambda: None, iters=0)
    with pytest.raises(UsageError, match="unknown dtype 'fp13'"):
        bench.run("matmul", shapes=["8"], dtype="fp13")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permissions")
def test_a_read_only_output_folder_is_refused_before_the_run(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        one_line_error(["run", "matmul", "--shape", "8", "--json", str(folder / "r.jsonl")], capsys,
                       expect="is not writable")  # fmt: skip
    finally:
        folder.chmod(stat.S_IRWXU)


def test_a_bug_inside_zhisuan_keeps_its_traceback(monkeypatch):
    def broken(args):
        raise ValueError("an internal bug, not the user's mistake")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["info"].set_defaults(func=broken)
    with pytest.raises(ValueError, match="an internal bug"):
        main(["info"])


def test_the_console_script_prints_one_line_for_a_user_error():
    proc = subprocess.run(
        [sys.executable, "-m", "zhisuan.bench", "report", "/no/such/results.jsonl"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == EXIT_USAGE and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "zhisuan: error: /no/such/results.jsonl: no such file"
