"""plan -> check correctness -> time -> Result.

For each (op, shape, dtype) the runner makes one set of fresh random inputs and its float64
reference, measures the baseline (torch) backend's error on them, then for each backend: runs it
once and checks it against the reference (tolerance from the OpSpec's rule), and only if the check
passes times it. A backend that fails its check or raises gets a Result that says so and no
timing. Results go to `on_result` as they arrive (the CLI writes each one to disk at once).
With interleave=True the backends of a case that passed their checks are timed together, one
sample of each in turn (timing.measure_interleaved): the side-by-side mode for a shared host.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from zhisuan.bench.core import chips, metrics, timing
from zhisuan.bench.core.results import Result, environment, new_run_id
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
                plan.cases += [Case(op, shape, dtype, runnable) for shape in shapes.get(op, [])]
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
    kind = device.kind
    env = environment()
    run_id = run_id or new_run_id()
    flush_bytes = 2 * device.cache_bytes if flush else 0
    results = []
    for case in plan.cases:
        spec = spec_for(case.op)
        inputs = spec.make_inputs(case.shape, case.dtype, plan.device, seed)
        reference = spec.reference(inputs)
        base_err = baseline_error(spec, inputs, reference, kind, case.dtype)
        checked = []  # (result, backend, bound fn) waiting to be timed together
        for backend in case.backends:
            math_dtype = backend.math_dtypes.get(dtype_name(case.dtype)) if kind == "cuda" else None
            tol, rule = spec.tolerance(inputs, reference, base_err, case.dtype, math_dtype)
            on_start(case, backend)
            result = Result(
                kind="kernel",
                op=case.op,
                backend=backend.name,
                shape=case.shape,
                dtype=dtype_name(case.dtype),
                device=plan.device,
                device_name=device.name,
                flops=spec.flops(case.shape),
                bytes=spec.bytes(case.shape, case.dtype.itemsize),
                interpreted=backend.interpreted(kind),
                env=env,
                run_id=run_id,
            )
            fn = check_case(result, spec, backend, inputs, reference, base_err, tol, rule)
            if fn is not None and interleave:
                checked.append((result, backend, fn))
                continue
            if fn is not None:
                time_case(result, backend, fn, inputs, device, timing_plan, flush_bytes)
            results.append(result)
            on_result(result)
        if checked:
            time_interleaved(checked, inputs, device, timing_plan, flush_bytes)
            for result, _, _ in checked:
                results.append(result)
                on_result(result)
        del inputs, reference
        gc.collect()
        if kind == "cuda":
            torch.cuda.empty_cache()
    return results


def check_case(result, spec, backend, inputs, reference, base_err, tol, rule) -> Callable[[], object] | None:
    """Run one backend once against the reference; returns its bound call if the check passed.

    Fills result.check, and result.status / error when the check fails or the backend raises.
    """
    fn = spec.bind(backend, inputs)
    try:
        err = max_abs_error(fn(), reference)
    except Exception as exc:  # a backend that crashes is a result, not the end of the run
        result.status, result.error = "error", f"{type(exc).__name__}: {exc}"
        return None
    passed = err == err and err <= tol  # NaN never passes
    result.check = {
        "max_abs_err": err,
        "tolerance": tol,
        "baseline_err": base_err,
        "passed": passed,
        "reference": "float64",
        "rule": rule,
    }
    if not passed:
        result.status = "check-failed"
        result.error = f"max abs error {err:.3g} exceeds tolerance {tol:.3g}"
        return None
    return fn


def time_case(result, backend, fn, inputs, device, timing_plan, flush_bytes) -> None:
    """Time one checked backend alone and fill its timing and rates."""
    try:
        samples = timing.measure(fn, device=device.torch_device, plan=timing_plan, flush_bytes=flush_bytes)
    except Exception as exc:
        result.status, result.error = "error", f"while timing: {type(exc).__name__}: {exc}"
        return
    fill_measurement(result, backend, inputs, device, samples)


def time_interleaved(checked, inputs, device, timing_plan, flush_bytes) -> None:
    """Time the checked backends of one case sample by sample in turn and fill each result."""
    try:
        all_samples = timing.measure_interleaved(
            [fn for _, _, fn in checked],
            device=device.torch_device,
            plan=timing_plan,
            flush_bytes=flush_bytes,
        )
    except Exception as exc:  # which backend raised is not known: every one of the batch says so
        names = ", ".join(backend.name for _, backend, _ in checked)
        for result, _, _ in checked:
            result.status = "error"
            result.error = f"while timing, interleaved ({names}): {type(exc).__name__}: {exc}"
        return
    for (result, backend, _), samples in zip(checked, all_samples, strict=True):
        fill_measurement(result, backend, inputs, device, samples)
        result.extra["interleaved_with"] = [b.name for _, b, _ in checked if b is not backend]


def fill_measurement(result, backend, inputs, device, samples) -> None:
    metrics.fill_timing(result, samples)
    if backend.describe is not None:
        try:
            result.extra.update(backend.describe(*inputs.args, **inputs.kwargs))
        except Exception as exc:  # a description is a nicety: its failure is noted, not fatal
            result.extra["describe_error"] = f"{type(exc).__name__}: {exc}"
    math = backend.math_dtypes.get(result.dtype, result.dtype)
    metrics.fill_rates(result, device, math)


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
    plan = timing.TimingPlan(iters=iters, time_budget_s=time_budget_s)
    samples = timing.measure(
        fn, device=dev.torch_device, plan=plan, flush_bytes=2 * dev.cache_bytes if flush else 0
    )
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
    metrics.fill_timing(result, samples)
    metrics.fill_rates(result, dev, dtype)
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
) -> list[Result]:
    """The Python form of `zhisuan run`: check and time every backend of ops on a suite or shapes."""
    from zhisuan.bench.core.results import ResultWriter

    ops = [ops] if isinstance(ops, str) else list(ops)
    dtypes = [dtype] if isinstance(dtype, str) else dtype
    plan = plan_run(ops, shapes_for(ops, device, suite, shapes), dtypes, device, backends)
    timing_plan = timing.TimingPlan(iters=iters, time_budget_s=time_budget_s)
    if json_path is None:
        return execute(plan, timing_plan=timing_plan, interleave=interleave)
    with ResultWriter(json_path) as writer:
        return execute(plan, timing_plan=timing_plan, on_result=writer.write, interleave=interleave)
