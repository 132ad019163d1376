"""Numbers that lie (issue 12, class 1): a backend that caches, that returns garbage after its
first call, that writes into its inputs, and a no-op timed by bench.measure. None of them may come
out `ok` with a rate; the honest backends beside them must be unaffected."""

import pytest
import torch

from zhisuan import bench
from zhisuan.bench.core import chips, metrics
from zhisuan.bench.core.results import Result
from zhisuan.kernels import registry


@pytest.fixture
def backend():
    """Register matmul backends for one test; unregister them after."""
    names = []

    def add(name, fn):
        registry.register("matmul", name, devices=("cpu",), dtypes=(torch.float32,))(fn)
        names.append(name)

    yield add
    for name in names:
        registry.unregister("matmul", name)


def run(backends, shape="97x33x7", iters=5, **kwargs):
    return {
        r.backend: r for r in bench.run("matmul", backends=backends, shapes=[shape], iters=iters, **kwargs)
    }


@pytest.mark.parametrize("interleave", [False, True])
def test_a_memoising_backend_is_caught_by_the_check_of_its_last_timed_call(backend, interleave):
    cache = {}

    def memo(a, b):  # keyed on identity: what a cache in front of a kernel does
        key = (id(a), id(b))
        if key not in cache:
            cache[key] = a @ b
        return cache[key]

    backend("test-memo", memo)
    results = run(["test-memo", "torch"], interleave=interleave)
    memoised = results["test-memo"]
    assert memoised.status == "check-failed" and memoised.flops_per_s is None and memoised.pct_peak is None
    assert memoised.check["passed"] and not memoised.check["last_call"]["passed"]  # the first call was right
    assert "later calls computed something else, or a cache answered" in memoised.error
    assert results["torch"].status == "ok" and results["torch"].flops_per_s > 0


@pytest.mark.parametrize("iters", [1, 2, 3])  # whatever the parity of the sample count
def test_the_cache_is_caught_whatever_the_number_of_samples(backend, iters):
    cache = {}
    backend("test-memo", lambda a, b: cache.setdefault(id(a), a @ b))
    result = run(["test-memo"], iters=iters)["test-memo"]
    assert result.status == "check-failed"
    # An input is negated before every timed sample: after an odd count the last timed call saw
    # negated inputs and its stale answer is caught; after an even count, one more call is made.
    caught_by = "the last timed call" if iters % 2 else "a call on sign-flipped inputs after the timing"
    assert caught_by in result.error


@pytest.mark.parametrize("samples", [1, 2, 5])
def test_an_ab_block_negates_the_inputs_and_checks_its_last_output(backend, samples):
    # zhisuan ab times through the worker's own requests (prepare, then time): the same trust as
    # the harness's, so a cache that passes the first check is caught in its first block.
    from zhisuan.bench.harness.worker import Child

    cache = {}
    backend("test-memo", lambda a, b: cache.setdefault(id(a), a @ b))
    child = Child()
    case = {
        "op": "matmul",
        "shape": {"M": 97, "N": 33, "K": 7},
        "dtype": "fp32",
        "backends": ["test-memo", "torch"],
    }
    prepared = child.prepare({"device": "cpu", "cases": [case], "seed": 0, "flush": False})["benchmarks"]
    assert [b["result"]["status"] for b in prepared] == ["ok", "ok"]  # the first calls were right
    memo, honest = (child.time({"id": b["id"], "samples": samples}) for b in prepared)
    assert memo["failed"] == "check-failed" and "samples_s" not in memo
    assert "later calls computed something else, or a cache answered" in memo["error"]
    assert len(honest["samples_s"]) == samples and "failed" not in honest
    again = child.time({"id": prepared[1]["id"], "samples": samples})  # its inputs were restored
    assert len(again["samples_s"]) == samples


def test_a_backend_returning_garbage_after_its_first_call_fails(backend):
    calls = []

    def first_right(a, b):
        calls.append(1)
        return a @ b if len(calls) == 1 else torch.empty(a.shape[0], b.shape[1])

    backend("test-garbage", first_right)
    result = run(["test-garbage"])["test-garbage"]
    assert result.status == "check-failed" and result.flops_per_s is None
    # torch.empty may hand back the memory of an earlier, right output: then the last timed call
    # passes by accident and the call on sign-flipped inputs after the timing is what fails.
    assert "exceeds tolerance" in result.error and "its first call passed" in result.error


def test_a_backend_writing_into_its_inputs_is_mutated_and_harms_no_other(backend):
    def scribbler(a, b):
        out = a @ b
        a.mul_(2.0)  # writes into its input
        return out

    backend("test-scribble", scribbler)
    results = run(["test-scribble", "cpp", "torch"] if "cpp" in registry.registered("matmul") else
                  ["test-scribble", "torch"])  # fmt: skip
    scribbled = results.pop("test-scribble")
    assert scribbled.status == "mutated" and "wrote into its inputs" in scribbled.error
    assert scribbled.samples_s == [] and scribbled.flops_per_s is None
    honest = [r for r in results.values() if r.status != "error"]  # cpp may be unavailable
    assert honest and all(r.status == "ok" and r.check["passed"] for r in honest)


def test_a_backend_writing_into_its_inputs_only_while_timed_is_caught(backend):
    calls = []

    def late_scribbler(a, b):
        calls.append(1)
        if len(calls) == 3:  # after the check, inside warm-up or timing
            a[0, 0] += 1.0
        return a @ b

    backend("test-late", late_scribbler)
    result = run(["test-late"])["test-late"]
    assert result.status in ("mutated", "check-failed") and result.flops_per_s is None


def test_an_honest_run_records_both_checks_and_leaves_its_inputs_as_they_were():
    results = run(["torch"], shape="7x97x1025", iters=4)
    r = results["torch"]
    assert r.status == "ok" and r.check["passed"] and r.check["last_call"]["passed"]
    attention = bench.run("attention", backends=["torch"], shapes=["1x4x2x17x33x80"], iters=3)
    assert all(a.status == "ok" and a.check["last_call"]["passed"] for a in attention)


def test_measure_without_a_reference_is_unchecked_and_a_no_op_is_suspect():
    a = torch.rand(64, 64) * 2 - 1
    unchecked = bench.measure(lambda: a @ a, flops=2 * 64**3, dtype="fp32", iters=5)
    assert unchecked.status == "unchecked" and unchecked.flops_per_s > 0 and "not checked" in unchecked.error
    no_op = bench.measure(lambda: None, flops=2 * 4096**3, dtype="fp32", iters=5)
    assert no_op.status == "suspect" and no_op.flops_per_s is None and no_op.pct_peak is None
    assert "above what this chip can do" in no_op.error
    no_dtype = bench.measure(lambda: None, flops=1e15, iters=3)
    assert no_dtype.status == "suspect"


def test_measure_with_a_reference_checks_the_first_and_the_last_call():
    a = torch.rand(33, 17, dtype=torch.float64)
    b = torch.rand(17, 9, dtype=torch.float64)
    good = bench.measure(lambda: a @ b, flops=2 * 33 * 17 * 9, dtype="fp64", reference=a @ b, iters=3)
    assert good.status == "ok" and good.check["passed"] and good.check["last_call"]["passed"]
    calls = []

    def drifting():
        calls.append(1)
        return a @ b if len(calls) == 1 else (a @ b) * 2

    bad = bench.measure(drifting, reference=a @ b, iters=3)
    assert bad.status == "check-failed" and bad.flops_per_s is None
    wrong = bench.measure(lambda: a @ b + 1, reference=a @ b, tolerance=1e-3, iters=3)
    assert wrong.status == "check-failed" and wrong.samples_s == []
    mutating = bench.measure(lambda: a.add_(1), iters=3, inputs=(a,))
    assert mutating.status == "mutated"


def test_a_rate_above_the_chip_is_suspect_on_gpus_too():
    figure = chips.Figure(100.0, "TFLOP/s", "datasheet", "test")
    spec = chips.ChipSpec(
        "x",
        "X",
        ("X",),
        None,
        {"bf16": figure, "fp8e4m3": chips.Figure(200.0, "TFLOP/s", "datasheet", "t")},
        None,
    )
    gpu = chips.Device("cuda", "cuda:0", "X", spec=spec)

    def rated(flops_per_s, dtype):
        r = Result("kernel", "matmul", "b", {}, "bf16", "cuda:0", "X", flops=flops_per_s, median_s=1.0)
        metrics.fill_rates(r, gpu, dtype)
        return r

    assert rated(99e12, "bf16").status == "ok" and rated(99e12, "bf16").pct_peak == pytest.approx(99)
    over = rated(101e12, "bf16")
    assert over.status == "suspect" and over.flops_per_s is None and "bf16 peak" in over.error
    assert rated(150e12, None).status == "ok"  # no dtype: the largest peak of the chip bounds it
    assert rated(201e12, None).status == "suspect"


def test_validate_headline_takes_no_rate_from_a_suspect_result():
    from zhisuan.bench.validate.cluster import cluster_flops

    suspect = Result("validate", "matmul", "b", {}, "fp32", "cpu", "X", status="suspect", extra={"rank": 0})
    info = cluster_flops([suspect], [])
    assert info["achieved_pflops"] is None and info["measured_ranks"] == 0


def test_an_output_that_cannot_be_compared_is_a_failed_check_and_its_file_reads_back(backend, tmp_path):
    backend("test-shape", lambda a, b: (a @ b)[:-1])
    backend("test-nan", lambda a, b: (a @ b) * float("nan"))
    backend("test-none", lambda a, b: None)
    path = tmp_path / "r.jsonl"
    results = run(["test-shape", "test-nan", "test-none", "torch"], json_path=str(path))
    assert (
        "cannot be compared" in results["test-shape"].error
        and "differs from the reference" in results["test-shape"].error
    )
    assert [results[n].status for n in ("test-shape", "test-nan", "test-none", "torch")] == [
        "check-failed"
    ] * 3 + ["ok"]
    back = {r.backend: r for r in bench.read_results(path)}  # strict JSON: NaN written as null
    assert back["test-nan"].check["max_abs_err"] is None and back["torch"].status == "ok"


def test_fingerprints_change_with_any_byte_shape_or_stride():
    from zhisuan.bench.harness.fingerprint import _weighted_sum, fingerprint

    a = torch.rand(97, 33, dtype=torch.bfloat16)
    before = fingerprint((a,))
    for change in (lambda t: t.view(-1)[1000].add_(1), lambda t: t.t_()):
        b = a.clone()
        change(b)
        assert fingerprint((b,)) != before
    assert fingerprint((a.clone(),)) == before and fingerprint((a, "not a tensor")) == before
    raw = torch.rand(1025).view(torch.uint8)  # the GPU path's sum, run here on the CPU
    changed = raw.clone()
    changed[4099] ^= 1
    assert _weighted_sum(raw) != _weighted_sum(changed) and _weighted_sum(raw) == _weighted_sum(raw.clone())
