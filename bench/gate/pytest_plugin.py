"""pytest plugin: the `kernel_benchmark` fixture, pytest-benchmark's `benchmark` for kernels.

    def test_my_matmul(kernel_benchmark):
        a, b = torch.randn(4096, 4096, device="cuda"), torch.randn(4096, 4096, device="cuda")
        c = kernel_benchmark(my_matmul, a, b)  # as pytest-benchmark: every argument is my_matmul's
        c = kernel_benchmark.measure(my_matmul, args=(a, b), flops=2 * 4096**3, device="cuda", dtype="bf16")
        assert kernel_benchmark.result.pct_peak > 50  # the zhisuan Result of the last measurement

Both calls return what the function returns (one more, untimed call after timing, as
pytest-benchmark does). zhisuan's options live on `measure` only, beside explicit `args`/`kwargs`
(pytest-benchmark's `pedantic` spelling), so a function's own `device=` or `dtype=` keyword never
collides with them. Timing goes through zhisuan.bench.harness.runner.measure: device
synchronisation (CUDA events on the GPU), a warm-up, a cache flush between samples, an explicit
sample count or a time budget, no calibration loop (each sample is one call).

pytest-benchmark's switches are honoured when it is installed (read with config.getoption):
`--benchmark-skip` skips kernel_benchmark tests, `--benchmark-only` runs them with its own,
`--benchmark-disable` (unless `--benchmark-enable`) calls each function once, untimed, and
`@pytest.mark.benchmark(group=...)` names the group. The same always exist under our names:
`--kernel-benchmark-skip/-only/-disable` (only: tests that use kernel_benchmark), and the
`benchmark` marker is registered when pytest-benchmark is not.

Output: a terminal table per group (pytest_summary) and, with `--kernel-benchmark-json PATH`,
pytest-benchmark's JSON (pytest_json; needs pytest-benchmark for its statistics). Measurements are
not handed to pytest-benchmark's session (that is private): its table, --benchmark-json and
--benchmark-compare-fail cover its own fixture; `zhisuan compare` is the gate for ours.

Registered through the `pytest11` entry point; when no test uses the fixture and no switch is
given the plugin only adds its options: no per-test hooks, no autouse fixture.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from zhisuan.bench.core.results import Result

FIXTURE = "kernel_benchmark"
STATE = pytest.StashKey["PluginState"]()


@dataclass
class Measurement:
    """One timed call of one test, with the names pytest-benchmark files it under."""

    result: Result
    name: str
    fullname: str
    group: str | None
    params: dict | None
    param: str | None
    options: dict
    extra_info: dict


@dataclass
class PluginState:
    skip: str | None  # the reason kernel_benchmark tests are skipped, if they are
    only: str | None  # the reason other tests are skipped, if they are (our --kernel-benchmark-only)
    unskip: bool  # pytest-benchmark's --benchmark-only: its skip of kernel_benchmark tests is undone
    disabled: bool
    measurements: list[Measurement] = field(default_factory=list)
    run_id: str | None = None
    written: str | None = None

    @property
    def timed(self) -> list[Measurement]:
        """The measurements with times: one whose check failed was not timed (its test fails)."""
        return [m for m in self.measurements if m.result.samples_s]

    def untimed_lines(self) -> list[str]:
        return [
            f"kernel_benchmark: {m.fullname} not timed: {m.result.status}: {m.result.error or 'no reason given'}"
            for m in self.measurements
            if not m.result.samples_s
        ]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("zhisuan", "zhisuan kernel benchmarks (the kernel_benchmark fixture)")
    group.addoption(
        "--kernel-benchmark-json", metavar="PATH",
        help="write kernel_benchmark results to PATH as pytest-benchmark JSON (needs pytest-benchmark)",
    )  # fmt: skip
    group.addoption(
        "--kernel-benchmark-iters", type=int, metavar="N",
        help="default number of timed samples per measurement (default: a time budget)",
    )  # fmt: skip
    group.addoption(
        "--kernel-benchmark-time-budget", type=float, metavar="SECONDS",
        help="default seconds of timed samples per measurement (default 0.5)",
    )  # fmt: skip
    for switch, text in (
        ("skip", "skip tests that use kernel_benchmark"),
        ("only", "run only tests that use kernel_benchmark (overrides the skip switches)"),
        ("disable", "call each kernel_benchmark function once, untimed, and return its value"),
    ):
        group.addoption(f"--kernel-benchmark-{switch}", action="store_true", help=text)


def _switch(config: pytest.Config, ours: str, theirs: str) -> str | None:
    """The flag that is on ('--kernel-benchmark-X' first, then pytest-benchmark's), or None."""
    for name in (ours, theirs):
        if config.getoption(name.lstrip("-").replace("-", "_"), default=False):
            return name
    return None


def pytest_configure(config: pytest.Config) -> None:
    # pytest-benchmark's options exist only when it is installed: getoption's default covers the rest.
    only = _switch(config, "--kernel-benchmark-only", "--benchmark-only")
    skip = _switch(config, "--kernel-benchmark-skip", "--benchmark-skip")
    disable = _switch(config, "--kernel-benchmark-disable", "--benchmark-disable")
    if disable == "--benchmark-disable" and config.getoption("benchmark_enable", default=False):
        disable = None
    if only and disable:
        raise pytest.UsageError(f"{only} and {disable} contradict each other: choose one")
    if config.getoption("kernel_benchmark_json"):
        from zhisuan.bench.core import pytest_json

        try:
            pytest_json.pytest_benchmark_version()
        except pytest_json.PytestBenchmarkMissing as exc:
            raise pytest.UsageError(f"--kernel-benchmark-json: {exc}") from None
    if not config.pluginmanager.has_plugin("benchmark"):  # pytest-benchmark registers it itself
        config.addinivalue_line(
            "markers", "benchmark(group=NAME): the group of the test's kernel_benchmark measurements"
        )
    ours_only = config.getoption("kernel_benchmark_only")
    config.stash[STATE] = PluginState(
        skip=f"Skipping kernel_benchmark ({skip} active)." if skip and not only else None,
        only="Skipping test without kernel_benchmark (--kernel-benchmark-only)." if ours_only else None,
        unskip=bool(config.getoption("benchmark_only", default=False)),
        disabled=disable is not None,
    )


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's, whose --benchmark-only skip it may undo
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[STATE]
    if not (state.skip or state.only or state.unskip):
        return
    for item in items:
        ours = FIXTURE in getattr(item, "fixturenames", ())
        if ours and state.skip:
            item.add_marker(pytest.mark.skip(reason=state.skip))
        elif ours and state.unskip:
            # pytest-benchmark's --benchmark-only skips every test without its own `benchmark` fixture
            # (a skip mark whose reason names the flag): a kernel_benchmark test is a benchmark too.
            item.own_markers[:] = [
                mark for mark in item.own_markers
                if not (mark.name == "skip" and "--benchmark-only" in str(mark.kwargs.get("reason", "")))
            ]  # fmt: skip
        elif not ours and state.only:
            item.add_marker(pytest.mark.skip(reason=state.only))


class KernelBenchmark:
    """What the fixture gives a test: call it like pytest-benchmark's `benchmark`, or use measure().

    group and extra_info are pytest-benchmark's: settable; the group starts as the test's
    `@pytest.mark.benchmark(group=...)`. disabled: True under --benchmark-disable (or ours).
    result: the Result of the last measurement (None before one, and when disabled); results: all.
    """

    def __init__(self, request: pytest.FixtureRequest):
        self.node = request.node
        self.config = request.config
        self.state = request.config.stash[STATE]
        marker = self.node.get_closest_marker("benchmark")
        self.group: str | None = marker.kwargs.get("group") if marker else None
        self.extra_info: dict = {}
        self.disabled = self.state.disabled
        self.results: list[Result] = []
        self.names: set[str | None] = set()

    @property
    def result(self) -> Result | None:
        return self.results[-1] if self.results else None

    def __call__(self, fn: Callable, *args, **kwargs):
        """Time fn(*args, **kwargs) and return its value: every argument is fn's, as in pytest-benchmark."""
        return self.measure(fn, args, kwargs)

    def measure(
        self,
        fn: Callable,
        args: tuple = (),
        kwargs: dict | None = None,
        *,
        flops: float | None = None,
        bytes: float | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        iters: int | None = None,
        time_budget_s: float | None = None,
        flush: bool = True,
        name: str | None = None,
        group: str | None = None,
        reference=None,
        tolerance: float | None = None,
    ):
        """Time fn(*args, **kwargs) on device and return its value; the Result goes to self.result.

        flops/bytes: the work of one call (for FLOP/s, bytes/s and % of the dtype's peak).
        reference: what fn must return (a tensor or tuple of tensors): its first and its last timed
        output are checked against it, within `tolerance` (max abs error; default 4 ulp of dtype x
        max|reference|). Without it the result is "unchecked": timed, but nobody vouches for it.
        args that are tensors must not change (status "mutated" if fn writes into them).
        name: needed only to measure more than one thing in one test (each its own name).
        group: this measurement's group (default: self.group).
        """
        if not callable(fn):
            raise TypeError(f"kernel_benchmark: fn must be callable, got {type(fn).__name__}")
        if name in self.names:
            raise ValueError(
                f"kernel_benchmark: {self.node.nodeid} already measured {'a kernel' if name is None else repr(name)}; "
                "give each measurement in one test its own name="
            )
        self.names.add(name)
        call = partial(fn, *args, **(kwargs or {}))
        if self.disabled:
            return call()
        import torch

        from zhisuan.bench.harness.runner import measure

        if iters is None and time_budget_s is None:
            iters = self.config.getoption("kernel_benchmark_iters")
            if iters is None:
                time_budget_s = self.config.getoption("kernel_benchmark_time_budget")
        tensors = tuple(a for a in (*args, *(kwargs or {}).values()) if isinstance(a, torch.Tensor))
        result = measure(call, flops=flops, bytes=bytes, device=device, dtype=dtype, name=self.node.nodeid,
                         iters=iters, time_budget_s=time_budget_s, flush=flush, reference=reference,
                         tolerance=tolerance, inputs=tensors)  # fmt: skip
        result.kind, result.backend = "pytest", name or ""
        result.run_id = self._run_id()
        result.extra["pytest_nodeid"] = self.node.nodeid
        callspec = getattr(self.node, "callspec", None)
        kind = result.device.partition(":")[0]  # torch.Event on any accelerator (cuda-events, npu-events)
        timer = "perf_counter" if kind == "cpu" else f"{kind}-events"
        self.state.measurements.append(
            Measurement(
                result=result,
                name=self.node.name if name is None else f"{self.node.name}::{name}",
                fullname=self.node.nodeid if name is None else f"{self.node.nodeid}::{name}",
                group=group if group is not None else self.group,
                params=dict(callspec.params) if callspec else None,
                param=callspec.id if callspec else None,
                options={
                    "timer": timer,
                    "iters": iters,
                    "time_budget_s": time_budget_s,
                    "cache_flush": flush,
                },
                extra_info=dict(self.extra_info),
            )
        )
        self.results.append(result)
        return call()

    def _run_id(self) -> str:
        from zhisuan.bench.core.results import new_run_id

        if self.state.run_id is None:
            self.state.run_id = new_run_id()
        return self.state.run_id


@pytest.fixture
def kernel_benchmark(request: pytest.FixtureRequest) -> KernelBenchmark:
    """Time a kernel like pytest-benchmark's `benchmark`, correctly (sync, warm-up, cache flush); see zhisuan.bench.gate.pytest_plugin."""
    return KernelBenchmark(request)


def _commit_info(root) -> dict:
    """The tested project's commit (not zhisuan's), as pytest-benchmark records it."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "id": git("rev-parse", "HEAD"),
        "dirty": bool(status) if status is not None else None,
        "project": root.name,
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
    }


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    path = config.getoption("kernel_benchmark_json")
    state = config.stash.get(STATE, None)
    if not path or state is None or not state.timed:
        return
    from zhisuan.bench.core import pytest_json

    entries = [
        pytest_json.benchmark_entry(m.result, name=m.name, fullname=m.fullname, params=m.params,
                                    param=m.param, options=m.options, group=m.group, extra_info=m.extra_info)
        for m in state.timed
    ]  # fmt: skip
    pytest_json.write(path, entries, _commit_info(config.rootpath))
    state.written = f"kernel_benchmark: {len(entries)} result(s) written to {path}"


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None or not state.measurements:
        return
    from zhisuan.bench.gate.pytest_summary import summary_tables

    for title, text in summary_tables(state.timed):
        terminalreporter.write_sep("-", title)
        for line in text.splitlines():
            terminalreporter.write_line(line)
    for line in state.untimed_lines():
        terminalreporter.write_line(line)
    if state.written:
        terminalreporter.write_line(state.written)
