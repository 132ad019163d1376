"""plan -> check correctness -> time -> Result.

For each (op, shape, dtype) the runner makes one set of fresh random inputs and its float64
reference, measures the baseline (torch) backend's error on them, then for each backend: runs it
once and checks it against the reference (tolerance from the OpSpec's rule), and only if the check
passes times it; the checking and timing are zhisuan.bench.harness.checktime's, which `zhisuan
validate` uses too. A backend that fails its check or raises gets a Result that says so and no
timing. Results go to `on_result` as they arrive (the CLI writes each one to disk at once).
With interleave=True the backends of a case that passed their checks are timed together, one
sample of each in turn (timing.measure_interleaved): the side-by-side mode for a shared host.
Every pool computes with the thread count of zhisuan.bench.core.threads during a run.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from zhisuan.bench.core import chips, threads, timing
from zhisuan.bench.core.environment import environment
from zhisuan.bench.core.results import Result, new_run_id
from zhisuan.bench.harness import checktime
from zhisuan.bench.workloads import OpSpec, spec_for
from zhisuan.bench.workloads.base import max_abs_error
from zhisuan.kernels import registry
from zhisuan.kernels.registry import Backend, dtype_name

DEFAULT_DTYPES = {"cpu": "fp32", "cuda": "bf16"}


@dataclass
class Case:
    op: str
    shape: dict
    dtype: torch.dtype
    backends: list[Backend]


@dataclass
class Plan:
    device: str
    cases: list[Case]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (backend, reason)
    without_shapes: list[str] = field(default_factory=list)  # ops given no shape: nothing planned, no skips

    @property
    def total(self) -> int:
        return sum(len(c.backends) for c in self.cases)


def plan_run(
    ops: Iterable[str],
    shapes: dict[str, list[dict]],
    dtypes: Iterable[str] | None,
    device: str,
    backends: Iterable[str] | None = None,
) -> Plan:
    """Which backend runs on which (op, shape, dtype); unavailable ones are listed with the reason."""
    kind = torch.device(device).type
    dtype_list = [registry.parse_dtype(d) for d in (dtypes or [DEFAULT_DTYPES[kind]])]
    plan = Plan(device=device, cases=[])
    wanted = list(backends) if backends else None
    for op in ops:
        spec = spec_for(op)
        if not shapes.get(op):  # e.g. a suite without this op: its backends are not skipped, just absent
            plan.without_shapes.append(op)
            continue
        registered = registry.registered(spec.registry_op)
        names = wanted or sorted(registered)
        for dtype in dtype_list:
            runnable = []
            for name in names:
                if name not in registered:
                    plan.skipped.append((f"{op}/{name}", f"no {spec.registry_op} backend named {name!r}"))
                    continue
                backend = registered[name]
                reason = spec.accepts(backend) or backend.why_not(kind, dtype)
                if reason:
                    plan.skipped.append((f"{op}/{name} {dtype_name(dtype)}", reason))
                else:
                    runnable.append(backend)
            if runnable:
                plan.cases += [Case(op, shape, dtype, runnable) for shape in shapes[op]]
    return plan


def baseline_error(spec: OpSpec, inputs, reference, kind: str, dtype: torch.dtype) -> float | None:
    """Error of the op's baseline backend (the vendor's) on these inputs, or None if it cannot run."""
    for backend in registry.registered(spec.registry_op).values():
        if backend.baseline and spec.accepts(backend) is None and backend.why_not(kind, dtype) is None:
            return max_abs_error(spec.bind(backend, inputs)(), reference)
    return None


def execute(
    plan: Plan,
    *,
    timing_plan: timing.TimingPlan | None = None,
    flush: bool = True,
    seed: int = 0,
    on_result: Callable[[Result], None] = lambda r: None,
    on_start: Callable[[Case, Backend], None] = lambda c, b: None,
    run_id: str | None = None,
    interleave: bool = False,
) -> list[Result]:
    device = chips.detect(plan.device)
    run_id = run_id or new_run_id()
    sampling = checktime.Sampling(device, timing_plan or timing.TimingPlan(), flush)
    results = []
    with threads.limited(threads.per_rank()):  # the one thread policy, for this run only
        env = environment()
        for case in plan.cases:
            spec = spec_for(case.op)
            inputs = spec.make_inputs(case.shape, case.dtype, plan.device, seed)
            reference = spec.reference(inputs)
            base_err = baseline_error(spec, inputs, reference, device.kind, case.dtype)
            waiting = []  # checked callables to be timed together (interleave)
            for backend in case.backends:
                on_start(case, backend)
                result = new_result(case, backend, spec, device, env, run_id)
                item = check_backend(result, backend, spec, inputs, reference, base_err)
                if item is not None and interleave:
                    waiting.append(item)
                    continue
                if item is not None:
                    checktime.time_one(item, sampling)
                results.append(result)
                on_result(result)
            if waiting:
                checktime.time_together(waiting, sampling)
                for item in waiting:
                    results.append(item.result)
                    on_result(item.result)
            del inputs, reference
            gc.collect()
            if device.kind == "cuda":
                torch.cuda.empty_cache()
    return results


def new_result(case: Case, backend: Backend, spec: OpSpec, device: chips.Device, env: dict,
               run_id: str) -> Result:  # fmt: skip
    return Result(
        kind="kernel",
        op=case.op,
        backend=backend.name,
        shape=case.shape,
        dtype=dtype_name(case.dtype),
        device=device.torch_device,
        device_name=device.name,
        flops=spec.flops(case.shape),
        bytes=spec.bytes(case.shape, case.dtype.itemsize),
        interpreted=backend.interpreted(device.kind),
        env=env,
        run_id=run_id,
    )


def check_backend(result, backend, spec, inputs, reference, base_err) -> checktime.Checked | None:
    """Check one backend against the reference (the harness's rule); what to time if it passed."""
    on_gpu = torch.device(result.device).type == "cuda"
    math_dtype = backend.math_dtypes.get(result.dtype) if on_gpu else None  # tf32 widens the floor
    bound, rule = spec.tolerance(inputs, reference, base_err, registry.parse_dtype(result.dtype), math_dtype)
    against = checktime.Check(reference, tolerance=bound, rule=rule, baseline_err=base_err)
    fn = spec.bind(backend, inputs)
    if not checktime.check(result, fn, against):
        return None
    describe = None
    if backend.describe is not None:
        describe = lambda: backend.describe(*inputs.args, **inputs.kwargs)  # noqa: E731
    return checktime.Checked(result, fn, backend.math_dtypes.get(result.dtype, result.dtype), describe)


def measure(
    fn: Callable[[], object],
    *,
    flops: float | None = None,
    bytes: float | None = None,
    device: str = "cpu",
    dtype: str | None = None,
    name: str = "custom",
    iters: int | None = None,
    time_budget_s: float | None = None,
    flush: bool = True,
) -> Result:
    """Time any zero-argument callable and turn it into a Result (rates against the peak of dtype).

    No correctness check is possible here: the caller owns what fn computes.
    """
    dev = chips.detect(device)
    sampling = checktime.Sampling(dev, timing.TimingPlan(iters=iters, time_budget_s=time_budget_s), flush)
    samples = sampling.samples(fn)
    result = Result(
        kind="kernel",
        op=name,
        backend="user",
        shape={},
        dtype=dtype or "",
        device=dev.torch_device,
        device_name=dev.name,
        flops=flops,
        bytes=bytes,
        env=environment(),
        run_id=new_run_id(),
    )
    checktime.fill(result, samples, dev, dtype)
    return result


def shapes_for(
    ops: Iterable[str],
    device: str,
    suite: str | None,
    shape_texts: Iterable[str] = (),
    causal: tuple[bool, ...] = (False, True),
    tokens: int | None = None,
) -> dict[str, list[dict]]:
    """Shapes per op: parsed from --shape texts if given, else from the named suite."""
    from zhisuan.bench.workloads.suites import suite_shapes

    kind = torch.device(device).type
    shape_texts = list(shape_texts)
    shapes = {}
    for op in ops:
        spec = spec_for(op)
        if shape_texts:
            parsed = []
            for text in shape_texts:
                parsed += (
                    spec.parse_shape(text, causal) if op.startswith("attention") else spec.parse_shape(text)
                )
            shapes[op] = parsed
        else:
            shapes[op] = suite_shapes(suite or "default", op, kind, tokens)
    return shapes


def run(
    ops: str | Iterable[str] = ("matmul", "attention"),
    *,
    backends: Iterable[str] | None = None,
    suite: str | None = "default",
    shapes: Iterable[str] = (),
    dtype: str | Iterable[str] | None = None,
    device: str = "cpu",
    iters: int | None = None,
    time_budget_s: float | None = None,
    json_path: str | None = None,
    interleave: bool = False,
    rounds: int = 1,
) -> list[Result]:
    """The Python form of `zhisuan run`: check and time every backend of ops on a suite or shapes.

    In this process, in `rounds` rounds (zhisuan.bench.harness.rounds; `zhisuan run` takes each
    round in a fresh process and adapts their number): one round by default, a quick look.
    """
    from zhisuan.bench.core.result_files import ResultWriter
    from zhisuan.bench.harness.rounds import RoundPlan
    from zhisuan.bench.harness.rounds import run as run_rounds

    ops = [ops] if isinstance(ops, str) else list(ops)
    dtypes = [dtype] if isinstance(dtype, str) else dtype
    plan = plan_run(ops, shapes_for(ops, device, suite, shapes), dtypes, device, backends)
    timing_plan = timing.TimingPlan(iters=iters, time_budget_s=time_budget_s)
    round_plan = RoundPlan(rounds=rounds, in_process=True)
    if json_path is None:
        return run_rounds(plan, round_plan, timing_plan=timing_plan, interleave=interleave)
    with ResultWriter(json_path) as writer:
        return run_rounds(
            plan, round_plan, timing_plan=timing_plan, on_result=writer.write, interleave=interleave
        )
