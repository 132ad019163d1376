"""pytest plugin: the `kernel_benchmark` fixture, for timing kernels in a project's own tests.

    def test_my_matmul(kernel_benchmark):
        a, b = torch.randn(4096, 4096, device="cuda"), torch.randn(4096, 4096, device="cuda")
        r = kernel_benchmark(lambda: my_matmul(a, b), flops=2 * 4096**3, device="cuda", dtype="bf16")
        assert r.pct_peak > 50

Timing goes through zhisuan.bench.core.timing.measure: device synchronisation (CUDA events on the GPU), a
warm-up, a cache flush between samples, an explicit sample count (`iters`) or a time budget, and
no calibration loop (each sample is one call). The Result carries FLOPs, bytes and % of peak.

Output: `--kernel-benchmark-json PATH` writes pytest-benchmark-compatible JSON, which
pytest-benchmark's `--benchmark-compare PATH --benchmark-compare-fail median:5%` and
`zhisuan compare` both read. When pytest-benchmark is active, each measurement is also handed to
its session, so its own table, --benchmark-json, --benchmark-save/--benchmark-autosave and
--benchmark-compare(-fail) cover kernel_benchmark tests too. (pytest-benchmark's --benchmark-only
skips them: it keeps only tests that use its `benchmark` fixture.)

Registered through the `pytest11` entry point; when no test uses the fixture the plugin only adds
its command-line options: no per-test hooks, no autouse fixture, nothing imported until used.
"""

from __future__ import annotations

import subprocess
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from zhisuan.bench.core.results import Result

ENTRIES = pytest.StashKey[list]()
RUN_ID = pytest.StashKey[str]()
WRITTEN = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("zhisuan", "zhisuan kernel benchmarks (the kernel_benchmark fixture)")
    group.addoption(
        "--kernel-benchmark-json", metavar="PATH",
        help="write kernel_benchmark results to PATH as pytest-benchmark-compatible JSON",
    )  # fmt: skip
    group.addoption(
        "--kernel-benchmark-iters", type=int, metavar="N",
        help="default number of timed samples per measurement (default: a time budget)",
    )  # fmt: skip
    group.addoption(
        "--kernel-benchmark-time-budget", type=float, metavar="SECONDS",
        help="default seconds of timed samples per measurement (default 0.5)",
    )  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    config.stash[ENTRIES] = []


class KernelBenchmark:
    """What the fixture returns: call it with a zero-argument callable to measure it."""

    def __init__(self, request: pytest.FixtureRequest):
        self.node = request.node
        self.config = request.config
        self.names: set[str | None] = set()

    def __call__(
        self,
        fn: Callable[[], object],
        *,
        flops: float | None = None,
        bytes: float | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        iters: int | None = None,
        time_budget_s: float | None = None,
        flush: bool = True,
        name: str | None = None,
    ) -> Result:
        """Time fn on device; returns the Result (samples, median, FLOP/s, % of the dtype's peak).

        name: needed only to measure more than one thing in one test (each its own name).
        """
        from zhisuan.bench.core import pytest_json
        from zhisuan.bench.harness.runner import measure

        if name in self.names:
            raise ValueError(
                f"kernel_benchmark: {self.node.nodeid} already measured {'a kernel' if name is None else repr(name)}; "
                "give each measurement in one test its own name="
            )
        self.names.add(name)
        if iters is None and time_budget_s is None:
            iters = self.config.getoption("kernel_benchmark_iters")
            if iters is None:
                time_budget_s = self.config.getoption("kernel_benchmark_time_budget")
        fullname = self.node.nodeid if name is None else f"{self.node.nodeid}::{name}"
        result = measure(fn, flops=flops, bytes=bytes, device=device, dtype=dtype, name=self.node.nodeid,
                         iters=iters, time_budget_s=time_budget_s, flush=flush)  # fmt: skip
        result.kind, result.backend = "pytest", name or ""
        result.run_id = self._run_id()
        result.extra["pytest_nodeid"] = self.node.nodeid
        callspec = getattr(self.node, "callspec", None)
        options = {"timer": "cuda-events" if result.device.startswith("cuda") else "perf_counter",
                   "iters": iters, "time_budget_s": time_budget_s, "cache_flush": flush}  # fmt: skip
        entry = pytest_json.benchmark_entry(
            result,
            name=self.node.name if name is None else f"{self.node.name}::{name}",
            fullname=fullname,
            params=dict(callspec.params) if callspec else None,
            param=callspec.id if callspec else None,
            options=options,
        )
        self.config.stash[ENTRIES].append(entry)
        _share_with_pytest_benchmark(self.config, entry, result.samples_s)
        return result

    def _run_id(self) -> str:
        from zhisuan.bench.core.results import new_run_id

        if RUN_ID not in self.config.stash:
            self.config.stash[RUN_ID] = new_run_id()
        return self.config.stash[RUN_ID]


@pytest.fixture
def kernel_benchmark(request: pytest.FixtureRequest) -> KernelBenchmark:
    """Time a kernel correctly (sync, warm-up, cache flush, no calibration loop); see zhisuan.bench.gate.pytest_plugin."""
    return KernelBenchmark(request)


def _share_with_pytest_benchmark(config: pytest.Config, entry: dict, samples: list[float]) -> None:
    """Hand one measurement to pytest-benchmark's session, when that plugin is active.

    pytest-benchmark keeps its session on config._benchmarksession and its measurements as
    stats.Metadata objects (one per benchmark, built from an object with the fixture's naming
    attributes): the same structures its own `benchmark` fixture fills, so everything downstream
    in pytest-benchmark treats ours like its own.
    """
    session = getattr(config, "_benchmarksession", None)
    if session is None or session.disabled:
        return
    from pytest_benchmark.stats import Metadata

    identity = SimpleNamespace(
        name=entry["name"], fullname=entry["fullname"], group=entry["group"], param=entry["param"],
        params=entry["params"], extra_info=entry["extra_info"], cprofile_stats=None, has_error=False,
    )  # fmt: skip
    metadata = Metadata(identity, iterations=1, options=entry["options"])
    for sample in samples:
        metadata.update(sample)
    session.benchmarks.append(metadata)


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
    entries = config.stash.get(ENTRIES, [])
    if not path or not entries:
        return
    from zhisuan.bench.core import pytest_json

    pytest_json.write(path, entries, _commit_info(config.rootpath))
    config.stash[WRITTEN] = f"kernel_benchmark: {len(entries)} result(s) written to {path}"


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    if WRITTEN in config.stash:
        terminalreporter.write_line(config.stash[WRITTEN])
