import json
import subprocess
import sys

import pytest

from zhisuan.bench.cli import main
from zhisuan.kernels.matmul.cpp import cpp_missing


def test_run_prints_table_and_writes_json_lines(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    csv_path = tmp_path / "r.csv"
    code = main(["run", "matmul", "--backend", "torch", "--shape", "97", "--iters", "3",
                 "--json", str(path), "--csv", str(csv_path)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "matmul" in out and "97x97x97" in out and "FLOP/s" in out and "% peak" in out
    record = json.loads(path.read_text().splitlines()[0])
    assert record["check"]["passed"] and record["schema"] == 1
    assert csv_path.exists()


@pytest.mark.skipif(cpp_missing("cpu") is not None, reason=str(cpp_missing("cpu")))
def test_run_interleaved_times_the_backends_in_turn(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    code = main(["run", "matmul", "--backend", "torch,cpp", "--shape", "33x7x97", "--iters", "3", "--rounds", "1",
                 "--interleave", "--json", str(path)])  # fmt: skip
    assert code == 0
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert {r["backend"] for r in records} == {"torch", "cpp"}
    assert all(len(r["samples_s"]) == 3 and r["extra"]["interleaved_with"] for r in records)


def test_info_lists_devices_and_backends(capsys):
    assert main(["info", "--no-probe"]) == 0
    out = capsys.readouterr().out
    assert "cpu" in out and "peak fp32" in out and "torch" in out and "no process group" in out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["run", "matmul", "--shape", "12xx3"], "matmul shape '12xx3'"),
        (["run", "--suite", "nope"], "unknown suite 'nope'"),
        (["run", "conv"], "unknown op 'conv'"),
        (["run", "matmul", "--dtype", "fp13"], "unknown dtype 'fp13'"),
    ],
)
def test_malformed_arguments_give_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_argparse_errors_exit_2_without_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "zhisuan.bench", "run", "--iters", "zero"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "expected a positive integer" in proc.stderr and "Traceback" not in proc.stderr


def test_console_script_runs_end_to_end(tmp_path):
    proc = subprocess.run(
        ["zhisuan", "run", "attention", "--backend", "torch", "--shape", "1x2x7x16", "--causal", "yes",
         "--iters", "2", "--json", str(tmp_path / "a.jsonl")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "b1 h2 s7 d16 causal" in proc.stdout


@pytest.mark.parametrize("command", ["info", "run", "collective", "compare", "history", "report", "validate"])
def test_every_subcommand_is_reachable_from_zhisuan(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"zhisuan {command}" in capsys.readouterr().out
