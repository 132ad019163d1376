"""The alpha-beta model (zhisuan.bench.collectives.netmodel): the fit, the formulas, the crossovers, the CLI.
(Its check against measured points it was not fitted on is in test_collectives_cli.py.)"""

import json

import numpy as np
import pytest

from zhisuan.bench.cli import main as zhisuan_main
from zhisuan.bench.collectives import netmodel
from zhisuan.bench.core.environment import environment
from zhisuan.bench.core.results import Result

ALPHA, BETA = 3e-6, 1 / 20e9  # 3 us, 20 GB/s


def _ring(size, p=2, alpha=ALPHA, beta=BETA):
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * size * beta


def test_fit_recovers_alpha_and_beta():
    sizes = [2**k for k in range(3, 27, 2)]
    for p in (2, 4, 8):
        fit = netmodel.fit_ring(sizes, [_ring(s, p) for s in sizes], p)
        assert fit.alpha == pytest.approx(ALPHA, rel=1e-6) and fit.beta == pytest.approx(BETA, rel=1e-6)


def test_fit_with_noise_predicts_held_out_points():
    rng = np.random.default_rng(3)
    sizes = [2**k for k in range(3, 27)]
    times = [_ring(s) * (1 + 0.05 * rng.standard_normal()) for s in sizes]
    errors = netmodel.held_out_errors(sizes, times, 2)
    assert len(errors) == len(sizes) // 2
    relative = [abs(pred - meas) / meas for _, meas, pred in errors]
    assert np.median(relative) < 0.08 and max(relative) < 0.25


def test_fit_refuses_what_it_cannot_fit():
    with pytest.raises(ValueError, match="at least 2 ranks"):
        netmodel.fit_ring([8, 16], [1e-6, 2e-6], 1)
    with pytest.raises(ValueError, match="at least 2 measured sizes"):
        netmodel.fit_ring([8], [1e-6], 2)


NET = netmodel.Network(alpha_in=2e-6, beta_in=1 / 100e9, alpha_net=5e-6, beta_net=1 / 50e9, node_size=8)


def test_formulas_of_thakur_rabenseifner_gropp():
    m = 1 << 20
    # inside one node: intra-node parameters
    assert netmodel.predict("ring", 8, m, NET) == pytest.approx(14 * 2e-6 + 2 * 7 / 8 * m / 100e9)
    assert netmodel.predict("tree", 8, m, NET) == pytest.approx(6 * (2e-6 + m / 100e9))
    assert netmodel.predict("hierarchical", 8, m, NET) == pytest.approx(netmodel.predict("ring", 8, m, NET))
    # across 128 nodes: flat algorithms pay the slowest link at every step
    p = 1024
    assert netmodel.predict("ring", p, m, NET) == pytest.approx(2 * 1023 * 5e-6 + 2 * 1023 / 1024 * m / 50e9)
    assert netmodel.predict("tree", p, m, NET) == pytest.approx(20 * (5e-6 + m / 50e9))
    hier = 14 * 2e-6 + 2 * 7 / 8 * m / 100e9 + 2 * 127 * 5e-6 + 2 * 127 / 128 * (m / 8) / 50e9
    assert netmodel.predict("hierarchical", p, m, NET) == pytest.approx(hier)
    t = netmodel.predict("ring", p, m, NET)
    assert netmodel.busbw(p, m, t) == pytest.approx(m / t * 2 * 1023 / 1024)
    with pytest.raises(ValueError, match="unknown algorithm"):
        netmodel.predict("butterfly", 8, m, NET)


@pytest.mark.parametrize("p", [8, 64, 1024, 16384])
def test_crossovers_separate_the_fastest_algorithms(p):
    ranges = netmodel.best_by_size(p, NET)
    assert ranges[0] == ("tree", 0.0)  # latency wins for tiny messages
    assert ranges[-1][0] in ("ring", "hierarchical")  # bandwidth wins for large ones
    for (alg, start), (next_alg, cross) in zip(ranges, ranges[1:], strict=False):
        assert start < cross
        # at the crossover both take the same time, and each wins on its own side
        assert netmodel.predict(alg, p, cross, NET) == pytest.approx(
            netmodel.predict(next_alg, p, cross, NET)
        )
        for size, best in ((cross * 0.9, alg), (cross * 1.1, next_alg)):
            times = {a: netmodel.predict(a, p, size, NET) for a in netmodel.ALGORITHMS}
            assert min(times, key=times.get) == best


def _write_sweep(path, backend="shm", ranks=2, extra_rows=(), op="sum", alpha=ALPHA):
    rows = []
    for size in [2**k for k in range(3, 25, 2)]:
        t = _ring(size, ranks, alpha=alpha)
        rows.append(
            Result(kind="collective", op="all_reduce", backend=backend,
                   shape={"bytes": size, "count": size // 4, "ranks": ranks}, dtype="fp32", device="cpu",
                   device_name="test", samples_s=[t], median_s=t, extra={"in_place": True, "op": op})
        )  # fmt: skip
    rows += list(extra_rows)
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows))


def test_cli_prints_fit_table_and_crossovers(tmp_path, capsys):
    path = tmp_path / "sweep.jsonl"
    _write_sweep(path)
    argv = ["collective-model", str(path), "--node-size", "8", "--nic-gbps", "400", "--gpus", "8,16384"]
    assert zhisuan_main([*argv, "--sizes", "64K,1G"]) == 0
    out = capsys.readouterr().out
    assert "alpha 3.000 us" in out and "20.00 GB/s" in out  # the fit, in readable units
    assert "median error 0.0%" in out  # noise-free data: the held-out points are exact
    lines = [line.split() for line in out.splitlines() if line and not line.startswith("#")]
    table = [line for line in lines if line[0].isdigit() and len(line) == 7]
    assert [(r[0], r[1]) for r in table] == [("8", "64K"), ("8", "1G"), ("16384", "64K"), ("16384", "1G")]
    for gpus, size, *times, best, bw in table:
        seconds = dict(zip(netmodel.ALGORITHMS, (float(t) * 1e-6 for t in times), strict=True))
        assert best == min(seconds, key=seconds.get)
        nbytes = {"64K": 65536, "1G": 1 << 30}[size]
        assert float(bw) == pytest.approx(netmodel.busbw(int(gpus), nbytes, seconds[best]) / 1e9, rel=0.01)
    assert "16384 GPUs: tree from 0, " in out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--node-size", "0"], "--node-size must be positive"),
        (["--gpus", "8,x"], "--gpus: invalid literal"),
        (["--sizes", "64Q"], "--sizes: size '64Q'"),
        (["--backend", "gloo"], "no checked all_reduce results of backend gloo"),
    ],
)
def test_cli_refuses_bad_model_arguments(tmp_path, capsys, argv, message):
    path = tmp_path / "sweep.jsonl"
    _write_sweep(path)
    assert zhisuan_main(["collective-model", str(path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_refuses_a_missing_file_and_models_each_sweep_of_a_mixed_one(tmp_path, capsys):
    assert zhisuan_main(["collective-model", str(tmp_path / "none.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    path = tmp_path / "mixed.jsonl"
    one_size = Result(kind="collective", op="all_reduce", backend="gloo", shape={"bytes": 8, "ranks": 2},
                      dtype="fp32", device="cpu", device_name="t", median_s=1e-4, extra={"in_place": True, "op": "sum"},
                      env=environment())  # fmt: skip
    _write_sweep(path, extra_rows=[one_size])
    _write_sweep(tmp_path / "max.jsonl", op="max", alpha=10e-6)  # the same sizes, another op: its own sweep
    path.write_text(path.read_text() + (tmp_path / "max.jsonl").read_text())
    assert zhisuan_main(["collective-model", str(path), "--gpus", "8"]) == 0
    out = capsys.readouterr().out
    assert "# gloo, 2 ranks, fp32 sum: skipped (1 size(s) on 2 rank(s)" in out
    assert out.count("# alpha-beta model fitted to") == 2 and "shm, 2 ranks, fp32 max" in out
    assert "alpha 3.000 us" in out and "alpha 10.000 us" in out  # sum and max were not mixed into one sweep
    assert zhisuan_main(["collective-model", str(path), "--backend", "gloo"]) == 2
    assert "no sweep of at least 2 sizes" in capsys.readouterr().err
