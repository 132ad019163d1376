"""Collective benchmark pieces that need no process group: sizes, the table, check data, summaries,
launcher discovery and argument errors."""

import math

import numpy as np
import pytest
import torch

from zhisuan.bench.collectives import check, ops, rankenv, summary
from zhisuan.bench.collectives.__main__ import main as collective_main
from zhisuan.bench.collectives.driver import Case
from zhisuan.bench.collectives.sizes import format_size, parse_size, size_sweep

# ---- sizes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,value",
    [("8", 8), ("64K", 65536), ("64k", 65536), ("128M", 128 << 20), ("8G", 8 << 30), ("1KB", 1024),
     ("2KiB", 2048), (" 3M ", 3 << 20), ("1.5K", 1536)],
)  # fmt: skip
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "K", "12Q", "-8", "1.3", "8 K B", "0x10", "64KK"])
def test_parse_size_rejects_malformed_input(text):
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_format_size_and_sweeps():
    assert [format_size(s) for s in (8, 1000, 65536, 3 << 20, 1 << 30)] == ["8", "1000", "64K", "3M", "1G"]
    assert size_sweep(8, 64, stepfactor=2) == [8, 16, 32, 64]
    assert size_sweep(8, 100, stepfactor=4) == [8, 32]
    assert size_sweep(1024, 4096, stepbytes=1024) == [1024, 2048, 3072, 4096]
    assert size_sweep(32, 32) == [32]
    with pytest.raises(ValueError, match="smaller than minbytes"):
        size_sweep(64, 8)


# ---- the table ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 4, 8, 1024])
def test_bus_factors_are_nccl_tests(n):
    factor = {name: c.bus_factor(n) for name, c in ops.COLLECTIVES.items()}
    assert math.isclose(factor["all_reduce"], 2 * (n - 1) / n)
    for name in ("all_gather", "reduce_scatter", "all_to_all"):
        assert math.isclose(factor[name], (n - 1) / n)
    for name in ("broadcast", "reduce", "sendrecv"):
        assert factor[name] == 1.0


def test_counts_and_buffers():
    ag, rs, ar, a2a = (ops.get(x) for x in ("all_gather", "reduce_scatter", "all_reduce", "alltoall"))
    assert ag.count_for(1000, 4, 3) == 249 and ar.count_for(1000, 4, 3) == 250  # 250 rounded to 3s
    assert rs.count_for(4, 4, 2) == 0  # too small: skipped by the driver
    assert ag.buffer_counts(12, 3) == (4, 12) and rs.buffer_counts(12, 3) == (12, 4)
    assert a2a.buffer_counts(12, 3) == (12, 12) and ar.bytes(7, 2) == 14
    with pytest.raises(ValueError, match="unknown collective 'allreduse'"):
        ops.get("allreduse")


def test_in_place_buffers_alias_as_nccl_tests_lays_them_out():
    site = ops.Site(n=3, rank=1, count=12)
    bufs = ops.allocate(ops.get("all_gather"), site, torch.float32, "cpu", in_place=True)
    assert bufs.send.data_ptr() == bufs.recv.data_ptr() + 4 * 4 and bufs.send.numel() == 4
    bufs = ops.allocate(
        ops.get("reduce_scatter"), ops.Site(n=3, rank=2, count=12), torch.float32, "cpu", True
    )
    assert bufs.recv.data_ptr() == bufs.send.data_ptr() + 8 * 4 and bufs.recv.numel() == 4
    bufs = ops.allocate(ops.get("broadcast"), site, torch.float32, "cpu", in_place=True)
    assert bufs.recv is bufs.send and bufs.recv.numel() == 12
    with pytest.raises(ValueError, match="no in-place form"):
        ops.allocate(ops.get("sendrecv"), ops.Site(n=2, rank=0, count=8), torch.float32, "cpu", in_place=True)


# ---- check data ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.int32])
@pytest.mark.parametrize("op", ["sum", "avg", "max", "min"])
@pytest.mark.parametrize("n", [2, 3, 4, 7, 64])
def test_check_data_is_exact_in_every_reduction_order(dtype, op, n):
    pattern = check.pattern_for(dtype, op, n, seed=11)
    index = np.arange(4099)
    values = torch.stack([torch.from_numpy(pattern.values(r, index)) for r in range(n)])  # ranks x elements
    limit = check.EXACT_LIMIT[dtype]
    if op in ("sum", "avg"):
        assert values.abs().sum(0).max() <= limit  # bounds every partial sum, whatever the order
    assert torch.equal(values.to(dtype).to(torch.int64), values)  # every input is representable
    assert values.ne(0).any() and values.unique().numel() > 2  # not zeros, not constant
    if op == "avg":
        assert values.sum(0).remainder(n).eq(0).all()
    # fresh data per seed
    assert not torch.equal(
        torch.from_numpy(check.pattern_for(dtype, op, n, seed=12).values(0, index)), values[0]
    )


def test_check_data_varies_with_position_rank_and_seed():
    pattern = check.pattern_for(torch.float32, "max", 4, seed=3)
    i = np.arange(1 << 16)
    v = pattern.values(1, i)
    assert np.bincount(v + pattern.k).min() > 0  # every value of -k..k comes up
    assert np.array_equal(pattern.values(np.full(i.shape, 1), i), v)  # rank as an array, per element
    assert np.mean(pattern.values(2, i) != v) > 0.99
    assert np.mean(pattern.values(1, i + (1 << 32)) != v) > 0.99  # positions beyond 2^32 are not aliases


@pytest.mark.parametrize("count", [1, 7, 65521, 65522, 200003])
def test_timing_data_repeats_one_hashed_block(count):
    pattern = check.pattern_for(torch.bfloat16, "sum", 3, seed=5)
    t = torch.full((count,), float("nan"), dtype=torch.bfloat16)
    check.fill_for_timing(t, pattern, 2)
    period = check.TIMING_PERIOD
    want = torch.from_numpy(pattern.values(2, np.arange(count) % period)).to(torch.bfloat16)
    assert torch.equal(t, want)


def _reduced(sends, op, n):
    stacked = torch.stack(sends)
    if op == "max":
        return stacked.max(0).values
    if op == "min":
        return stacked.min(0).values
    total = stacked.sum(0)
    return torch.div(total, n, rounding_mode="floor") if op == "avg" else total


def _slice(t, rank, chunk):
    return t[rank * chunk : (rank + 1) * chunk]


# Each rank's receive buffer as a correct implementation leaves it, written from the definitions
# independently of the table's `expected` (sends: every rank's send buffer; c: the slice length).
SIMULATED = {
    "all_reduce": lambda sends, op, n, rank, root, c: _reduced(sends, op, n),
    "reduce": lambda sends, op, n, rank, root, c: _reduced(sends, op, n),
    "reduce_scatter": lambda sends, op, n, rank, root, c: _slice(_reduced(sends, op, n), rank, c),
    "broadcast": lambda sends, op, n, rank, root, c: sends[root],
    "all_gather": lambda sends, op, n, rank, root, c: torch.cat(sends),
    "all_to_all": lambda sends, op, n, rank, root, c: torch.cat([_slice(s, rank, c) for s in sends]),
    "sendrecv": lambda sends, op, n, rank, root, c: sends[(rank - 1) % n],
}


def test_every_collective_has_an_independent_oracle():
    assert set(SIMULATED) == set(ops.COLLECTIVES)


@pytest.mark.parametrize(
    "name,op",
    [(name, op) for name, c in ops.COLLECTIVES.items() for op in (ops.REDUCE_OPS if c.reduces else [None])],
)
@pytest.mark.parametrize("n", [2, 3])
def test_count_wrong_is_zero_for_correct_results_and_counts_corruption(name, op, n):
    coll = ops.get(name)
    count = coll.count_for(4 * 1025 * n, 4, n)
    pattern = check.pattern_for(torch.float32, op, n, seed=3)
    send_count, recv_count = coll.buffer_counts(count, n)
    sends = [torch.from_numpy(pattern.values(r, np.arange(send_count))) for r in range(n)]
    for rank in range(n):
        out = SIMULATED[name](sends, op, n, rank, 1, count // n if coll.split else count)
        assert out.numel() == recv_count
        recv = out.to(torch.float32)
        site = ops.Site(n=n, rank=rank, op=op, root=1, count=count)
        assert check.count_wrong(coll, recv, pattern, site) == 0
        if not coll.checked_on(site):
            continue  # undefined off the root
        recv[5] += 1
        recv[-1] = float("nan")  # a slot the collective never wrote (the sentinel)
        assert check.count_wrong(coll, recv, pattern, site) == 2


def test_int_sentinel_never_matches():
    t = torch.empty(3, dtype=torch.int32)
    check.fill_sentinel(t)
    assert t.eq(torch.iinfo(torch.int32).min).all()


# ---- summaries ----------------------------------------------------------------------------------


def test_summary_arithmetic_follows_nccl_tests():
    coll = ops.get("all_reduce")
    case = Case(coll, torch.float32, "sum", 4 << 20, 1 << 20, "torch")
    gathered = [([1e-3, 3e-3], 0), ([2e-3, 4e-3], 2)]  # rank 1 slower, with 2 wrong elements
    row = summary.summarize_samples(case, 0, True, gathered, average=1)
    assert row.samples_s == pytest.approx([1.5e-3, 3.5e-3]) and row.time_s == pytest.approx(2.5e-3)
    assert row.algbw == pytest.approx((4 << 20) / 2.5e-3)
    assert row.busbw == pytest.approx(row.algbw * 2 * (2 - 1) / 2)
    assert row.wrong == 2 and row.slowest_rank == 1 and row.max_s == 4e-3 and row.root == -1
    assert row.p50_s == pytest.approx(np.percentile([1e-3, 2e-3, 3e-3, 4e-3], 50))
    assert summary.summarize_samples(case, 0, True, gathered, average=0).time_s == pytest.approx(2e-3)
    assert summary.summarize_samples(case, 0, True, gathered, average=2).time_s == pytest.approx(2e-3)
    assert summary.summarize_samples(case, 0, True, gathered, average=3).time_s == pytest.approx(3e-3)
    line = summary.format_line(row, None, checked=True)
    assert line.split()[:5] == ["4194304", "1048576", "fp32", "sum", "-1"] and line.split()[9:14] == [
        "n/a"
    ] * 4 + ["torch"]


def nccl_tests_fields(line: str) -> dict:
    """A row read as scripts read nccl-tests' all_reduce_perf output: by position, extras ignored."""
    size, count, dtype, redop, root, *rest = line.split()
    placements = {}
    for name, (time_us, algbw, busbw, wrong) in (("out", rest[0:4]), ("in", rest[4:8])):
        placements[name] = (float(time_us), float(algbw), float(busbw), wrong)
    return {
        "size": int(size),
        "count": int(count),
        "type": dtype,
        "redop": redop,
        "root": int(root),
        **placements,
    }


def test_the_table_keeps_nccl_tests_column_order_and_puts_ours_after():
    header = [line.lstrip("#").split() for line in summary.HEADER.splitlines()]
    nccl_tests = [
        "size",
        "count",
        "type",
        "redop",
        "root",
        "time",
        "algbw",
        "busbw",
        "#wrong",
        "time",
        "algbw",
        "busbw",
        "#wrong",
    ]
    assert header[1][:13] == nccl_tests and header[1][13:] == ["impl", "p50", "p95", "max", "slow"]
    assert header[0][:2] == ["out-of-place", "in-place"]
    coll = ops.get("all_reduce")
    case = Case(coll, torch.float32, "max", 4100, 1025, "shm")
    out_row = summary.summarize_samples(case, 0, False, [([2e-6, 4e-6], 0), ([3e-6, 3e-6], 0)], average=1)
    in_row = summary.summarize_samples(case, 0, True, [([1e-6, 1e-6], 0), ([1e-6, 1e-6], 3)], average=1)
    fields = nccl_tests_fields(summary.format_line(out_row, in_row, checked=True))
    assert (fields["size"], fields["count"], fields["type"], fields["redop"], fields["root"]) == (
        4100,
        1025,
        "fp32",
        "max",
        -1,
    )
    gbps = 4100 / 3e-6 / 1e9  # printed with two decimals
    assert fields["out"] == (3.0, pytest.approx(gbps, abs=0.005), pytest.approx(gbps, abs=0.005), "0")
    assert fields["in"][0] == pytest.approx(1.0) and fields["in"][3] == "3"
    assert summary.format_line(out_row, in_row, checked=True).split()[13] == "shm"


# ---- launchers --------------------------------------------------------------------------------


def test_discover_torchrun_slurm_and_mpi():
    torchrun = {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4",
                "MASTER_ADDR": "n0", "MASTER_PORT": "29400"}  # fmt: skip
    assert rankenv.discover(torchrun) == rankenv.RankEnv(3, 8, 1, 4, "n0", 29400, "torchrun")
    slurm = {"SLURM_PROCID": "5", "SLURM_STEP_NUM_TASKS": "16", "SLURM_LOCALID": "1",
             "SLURM_STEP_NODELIST": "gpu[07-08,11],cpu1", "SLURM_JOB_ID": "123456",
             "SLURM_STEP_TASKS_PER_NODE": "8(x2)"}  # fmt: skip
    assert rankenv.discover(slurm) == rankenv.RankEnv(5, 16, 1, 8, "gpu07", 20000 + 123456 % 20000, "slurm")
    ompi = {"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "0",
            "OMPI_COMM_WORLD_LOCAL_SIZE": "2", "MASTER_ADDR": "h0"}  # fmt: skip
    assert rankenv.discover(ompi) == rankenv.RankEnv(2, 4, 0, 2, "h0", 29500, "mpi")
    mpich = {"PMI_RANK": "1", "PMI_SIZE": "2", "MASTER_ADDR": "h0", "MASTER_PORT": "1234"}
    assert rankenv.discover(mpich).rank == 1 and rankenv.discover(mpich).master_port == 1234
    with pytest.raises(ValueError, match="set MASTER_ADDR"):
        rankenv.discover({"PMI_RANK": "1", "PMI_SIZE": "2"})
    with pytest.raises(ValueError, match="RANK='x' is not an integer"):
        rankenv.discover({"RANK": "x", "WORLD_SIZE": "2"})
    assert rankenv.discover({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) is None  # a one-task job
    assert rankenv.discover({}) is None


@pytest.mark.parametrize(
    "nodelist,host",
    [
        ("node1", "node1"),
        ("gpu[01-04]", "gpu01"),
        ("a[3,5-7],b2", "a3"),
        ("rack1-n[009-010]x", "rack1-n009x"),
    ],
)
def test_first_slurm_host(nodelist, host):
    assert rankenv.first_slurm_host(nodelist) == host


# ---- the command line: bad input gives one line and exit 2 -----------------------------------


@pytest.mark.parametrize(
    "argv,message",
    [
        (["-b", "12Q"], "size '12Q' is not a byte count"),
        (["-e", "-1"], "size '-1'"),
        (["-n", "0"], "expected a positive integer"),
        (["-T", "soon"], "expected a positive number of seconds"),
        (["--min-busbw", "fast"], "expected a bandwidth in GB/s >= 0, got 'fast'"),
        (["-w", "-1"], "expected an integer >= 0, got '-1'"),
        (["--device", "bogus"], "argument --device: device 'bogus': torch has no such device type"),
        (["--device", "cuda:0" if torch.cuda.is_available() else "cuda"], "argument --device: "),
        (["--nproc", "0"], "expected a positive integer"),
    ],
)
def test_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        collective_main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["all_gather", "--impl", "shm", "--nproc", "2"], "--impl shm applies to all_reduce only"),
        (["--impl", "nope", "--nproc", "2"], "unknown all_reduce backend 'nope'"),
        (["--impl", "shm", "-d", "fp64", "--nproc", "2"], "--impl shm does not support -d fp64"),
        (["-d", "fp8", "--nproc", "2"], "unknown dtype 'fp8'"),
        (["-o", "prod", "--nproc", "2"], "-o prod: unknown reduction"),
        (["broadcast", "-r", "2", "--nproc", "2"], "--root 2 is not a rank"),
        (["sendrecv"], "sendrecv needs at least 2 ranks"),
        (["-b", "1M", "-e", "8"], "smaller than minbytes"),
        (["-G", "2", "--device", "cpu"], "--cudagraph needs --device cuda"),
        (["bcast", "--nproc", "2"], "unknown collective 'bcast'"),
        (["-d", "", "--nproc", "2"], "no datatype given"),
        (["-b", "8", "-e", "64", "-f", "2", "-b", "0"], "a step factor needs minbytes > 0"),
    ],
)
def test_bad_plans_exit_2_with_one_line(argv, message, capsys, tmp_path):
    assert collective_main([*argv, "--json", str(tmp_path / "r.jsonl")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "r.jsonl").exists()


@pytest.mark.parametrize("what", ["directory", "not-results", "unwritable-folder"])
def test_the_results_file_is_refused_before_any_rank_starts(what, tmp_path, monkeypatch, capsys):
    from zhisuan.bench.collectives import launch

    def spawn(*args, **kwargs):
        raise AssertionError("ranks were spawned for a results file that cannot be written")

    monkeypatch.setattr(launch, "spawn", spawn)
    path, message = {
        "directory": (tmp_path, "is a directory"),
        "not-results": (tmp_path / "notes.txt", "is not a zhisuan results file"),
        "unwritable-folder": (tmp_path / "file" / "r.jsonl", "cannot create the folder"),
    }[what]
    (tmp_path / "notes.txt").write_text("my notes\n")
    (tmp_path / "file").write_text("a file where a folder should be\n")
    assert collective_main(["--nproc", "2", "--json", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zhisuan: error: ") and err.count("\n") == 1 and message in err, err
    assert (tmp_path / "notes.txt").read_text() == "my notes\n"


def test_store_progress_names_the_ranks_gone_by_host_else_the_ranks_behind():
    from datetime import timedelta

    import torch.distributed as dist

    from zhisuan.bench.collectives import launch
    from zhisuan.bench.collectives.watchdog import StoreProgress

    store = dist.TCPStore("127.0.0.1", launch.free_port(), 1, True, timeout=timedelta(seconds=30))

    def ranks(run_id, hosts, steps):
        made = [
            StoreProgress(r, len(hosts), run_id, host=h, store=store, heartbeat_s=0.5)
            for r, h in enumerate(hosts)
        ]
        for progress, count in zip(made, steps, strict=True):
            for i in range(count):
                progress.step(f"case {i + 1}")
        return made

    behind = ranks("run1", ["node-a", "node-b", "node-b"], [3, 2, 3])
    assert behind[0].peers_behind() == "; rank 1 on node-b is behind (step 2 case 2)"
    # node-c goes down (its ranks' heartbeats stop, and they never say they left); rank 1 left (it
    # failed and said so): only the ranks gone are named, the others were waiting for them.
    gone = ranks("run2", ["node-a", "node-a", "node-c", "node-c", "node-d"], [3, 2, 3, 3, 1])
    for r in (2, 3, 4):
        gone[r].stopped.set()
    gone[1].finish()
    assert gone[0].peers_behind() == (
        "; all 2 ranks of node-c (2, 3) are gone (no heartbeat for 2 s); rank 4 on node-d is gone (no heartbeat "
        "for 2 s)"
    )
    for progress in behind + gone:
        progress.finish()
