"""plan -> check correctness -> time -> Result.

Before anything is allocated, the memory every case needs is estimated (OpSpec.memory_bytes) and
a case that cannot fit is refused (UsageError). For each (op, shape, dtype) the runner makes the
seeded random inputs and their float64 reference, measures the baseline (torch) backend's error,
then for each backend: makes its own fresh copy of the inputs (the same values, from the same
seed: a backend that writes into its inputs harms only itself), runs it once and checks it against
the reference (tolerance from the OpSpec's rule), and only if the check passes times it, with one
input negated between samples and the last timed output checked again; the checking and timing
are zhisuan.bench.harness.checktime's, which `zhisuan validate` uses too. A backend that fails a
check, raises, writes into its inputs or reaches a rate the chip cannot give gets a Result that
says so and no rate. Results go to `on_result` as they arrive (the CLI writes each one at once).
With interleave=True the backends of a case that passed their checks are timed together, one
sample of each in turn (timing.measure_interleaved): the side-by-side mode for a shared host.
Every pool computes with the thread count of zhisuan.bench.core.threads during a run.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from zhisuan.bench.core import accel, chips, memory, threads, timing
from zhisuan.bench.core.environment import environment
from zhisuan.bench.core.errors import UsageError
from zhisuan.bench.core.results import Result, new_run_id, short_shape
from zhisuan.bench.harness import checktime
from zhisuan.bench.harness.fingerprint import fingerprint
from zhisuan.bench.workloads import OpSpec, spec_for
from zhisuan.bench.workloads.base import Inputs, max_abs_error
from zhisuan.bench.workloads.base import tolerance as harness_tolerance
from zhisuan.kernels import registry
from zhisuan.kernels.registry import Backend, dtype_name

DEFAULT_DTYPES = {"cpu": "fp32", "accelerator": "bf16"}  # by zhisuan.bench.core.accel.size_class


@dataclass
class Case:
    op: str
    shape: dict
    dtype: torch.dtype
    backends: list[Backend]


@dataclass
class RunPlan:
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
) -> RunPlan:
    """Which backend runs on which (op, shape, dtype); unavailable ones are listed with the reason."""
    kind = torch.device(chips.check_device(device)).type
    dtype_list = [parse_dtype(d) for d in (dtypes or [DEFAULT_DTYPES[accel.size_class(kind)]])]
    plan = RunPlan(device=device, cases=[])
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


def parse_dtype(name: str) -> torch.dtype:
    """registry.parse_dtype, its error a UsageError (a dtype is the user's argument here)."""
    try:
        return registry.parse_dtype(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def baseline_error(spec: OpSpec, case: Case, device: str, seed: int, reference) -> float | None:
    """Error of the op's baseline backend (the vendor's) on its own copy of the inputs, or None if
    it cannot run."""
    kind = torch.device(device).type
    for backend in registry.registered(spec.registry_op).values():
        if backend.baseline and spec.accepts(backend) is None and backend.why_not(kind, case.dtype) is None:
            inputs = spec.make_inputs(case.shape, case.dtype, device, seed)
            return max_abs_error(spec.bind(backend, inputs)(), reference)
    return None


def check_memory(plan: RunPlan, interleave: bool = False) -> None:
    """UsageError, before anything is allocated, for a case that cannot fit in the device's memory.

    A case needs its reference's memory (OpSpec.memory_bytes) and, for each backend alive at once
    (one, or all of the case's when interleaved), its own inputs and output.
    """
    available, where = memory.available_bytes(plan.device)
    if available is None:
        return
    for case in plan.cases:
        copies = 1 + (len(case.backends) if interleave else 1)  # the baseline's or one backend's, + all
        needed = spec_for(case.op).memory_bytes(case.shape, case.dtype.itemsize, copies)
        if needed > available:
            raise UsageError(
                f"{case.op} shape {short_shape(case.op, case.shape)} ({registry.dtype_name(case.dtype)}) needs about "
                f"{memory.gib(needed)} (inputs, outputs and the float64 reference), more than the "
                f"{memory.gib(available)} {where}; choose a smaller shape"
            )


def execute(
    plan: RunPlan,
    *,
    timing_plan: timing.TimingPlan | None = None,
    flush: bool = True,
    seed: int = 0,
    on_result: Callable[[Result], None] = lambda r: None,
    on_start: Callable[[Case, Backend], None] = lambda c, b: None,
    run_id: str | None = None,
    interleave: bool = False,
) -> list[Result]:
    check_memory(plan, interleave)
    device = chips.detect(plan.device)
    run_id = run_id or new_run_id()
    sampling = checktime.Sampling(device, timing_plan or timing.TimingPlan(), flush)
    results = []
    with threads.limited(threads.per_rank()):  # the one thread policy, for this run only
        env = environment()
        for case in plan.cases:
            spec = spec_for(case.op)
            inputs = spec.make_inputs(case.shape, case.dtype, plan.device, seed)
            reference, expected = spec.reference(inputs), fingerprint(inputs.tensors())
            del inputs  # each backend gets its own copy: one that writes into it harms only itself
            base_err = baseline_error(spec, case, plan.device, seed, reference)
            waiting = []  # checked callables to be timed together (interleave)
            for backend in case.backends:
                on_start(case, backend)
                result = new_result(case, backend, spec, device, env, run_id)
                own = spec.make_inputs(case.shape, case.dtype, plan.device, seed)
                item = check_backend(result, backend, spec, own, reference, base_err, expected)
                del own
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
            del reference, waiting
            gc.collect()
            accel.empty_cache(device.kind)
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


def check_backend(result: Result, backend: Backend, spec: OpSpec, inputs: Inputs, reference,
                  base_err: float | None, expected: tuple) -> checktime.Checked | None:  # fmt: skip
    """Check one backend on its own inputs against the reference (the harness's rule); what to
    time if it passed: the callable, its check (again for the last timed call), its inputs (to be
    fingerprinted) and their sign flip between samples. expected: the reference inputs' fingerprint."""
    on_accelerator = accel.is_accelerator(torch.device(result.device).type)
    math_dtype = backend.math_dtypes.get(result.dtype) if on_accelerator else None  # tf32 widens the floor
    bound, rule = spec.tolerance(inputs, reference, base_err, registry.parse_dtype(result.dtype), math_dtype)
    against = checktime.Check(reference, tolerance=bound, rule=rule, baseline_err=base_err)
    tensors = inputs.tensors()
    own = fingerprint(tensors)
    if own != expected:  # the same seed must give the same values, or the reference is not theirs
        raise RuntimeError(
            f"{spec.name}: inputs made twice from one seed differ: make_inputs is not deterministic"
        )
    fn = spec.bind(backend, inputs)
    if not checktime.check(result, fn, against, tensors, own):
        return None
    describe = None
    if backend.describe is not None:
        describe = lambda: backend.describe(*inputs.args, **inputs.kwargs)  # noqa: E731
    varying = checktime.Varying(lambda: spec.flip(inputs), spec.flipped) if spec.flippable else None
    return checktime.Checked(result, fn, backend.math_dtypes.get(result.dtype, result.dtype), describe,
                             against=against, inputs=tensors, varying=varying, inputs_fingerprint=own)  # fmt: skip


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
    reference=None,
    tolerance: float | None = None,
    inputs: tuple = (),
) -> Result:
    """Time any zero-argument callable and turn it into a Result (rates against the peak of dtype).

    With `reference` (what fn must return: a tensor or a tuple of tensors), fn's first output is
    checked before timing and the output of its last timed call after, within `tolerance` (default:
    4 ulp of dtype x max|reference|); a wrong output gets status "check-failed" and no timing.
    Without it the result is status "unchecked": timed and rated, but nobody vouches for what fn
    computes. inputs: tensors fn must not write into (status "mutated" if it does). A rate above
    what the chip can do is status "suspect", with no rate, either way.
    """
    dev = chips.detect(device)
    sampling = checktime.Sampling(dev, timing.TimingPlan(iters=iters, time_budget_s=time_budget_s), flush)
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
    if reference is None:
        result.status = "unchecked"
        result.error = "no reference given: the output was not checked (bench.measure(..., reference=...))"
        checktime.time_one(checktime.Checked(result, fn, dtype, inputs=inputs), sampling)
        return result
    if tolerance is None:
        floor_dtype = registry.parse_dtype(dtype) if dtype else torch.float32
        tolerance = harness_tolerance(None, reference, floor_dtype)
        rule = "err <= 4 ulp x max|reference|"
    else:
        rule = "err <= the caller's tolerance"
    against = checktime.Check(
        reference, tolerance=tolerance, rule=rule, reference_kind="the caller's reference"
    )
    checktime.check_then_time(result, fn, against, sampling, dtype, inputs=inputs)
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
    backends = [backends] if isinstance(backends, str) else backends
    shapes = [shapes] if isinstance(shapes, str) else shapes
    plan = plan_run(ops, shapes_for(ops, device, suite, shapes), dtypes, device, backends)
    timing_plan = timing.TimingPlan(iters=iters, time_budget_s=time_budget_s)
    round_plan = RoundPlan(rounds=rounds, in_process=True)
    if json_path is None:
        return run_rounds(plan, round_plan, timing_plan=timing_plan, interleave=interleave)
    with ResultWriter(json_path) as writer:
        return run_rounds(
            plan, round_plan, timing_plan=timing_plan, on_result=writer.write, interleave=interleave
        )
