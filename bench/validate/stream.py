"""Memory bandwidth: STREAM copy, scale, add and triad, bytes read + written per second.

Kernels: numba on CPUs; numba.cuda on NVIDIA GPUs; torch's own elementwise operations on every
other accelerator (ROCm and Hygon GPUs, Ascend NPUs, XPUs: stream_torch), and on NVIDIA GPUs where
numba.cuda cannot compile (the record says why). Arrays of fp64 (fp32 on a device without fp64),
each at least 4x the last-level cache (CPU) or L2 (accelerator) and never below 64 MiB / 1 GiB, so
every pass streams from memory; no cache flush is needed between samples. Each kernel's output is
compared with numpy's (CPU), torch's on the device (numba.cuda) or torch's on the CPU (torch
kernels) on the same inputs before it is timed.

CPU: judged against a ceiling measured in the same check, right before each kernel, on the same
arrays and with the same threads: the all-core copy (numpy.copyto of one slice per thread, all
threads at once: the C library's memcpy on every core), bytes counted as STREAM counts them, the
better of its figures right before and right after the kernel. A
CPU's memory datasheet figure is not known in general: it depends on the channels populated and
the DIMMs' speed, which a guest cannot read (dmidecode needs root, a VM shows emulated tables); a
site that knows its figure states it in its thresholds file (basis "value", e.g. 12 channels x
DDR5-4800 x 8 B = 460.8 GB/s). The all-core copy is the most a plain copy moves on this host now,
so a STREAM kernel is not judged against a single thread's copy (a ceiling a many-core host's
kernels pass several times over). Accelerators: against the datasheet memory bandwidth; with the
numba.cuda kernels torch's device-to-device copy_ is measured beside them for reference.

CPU ranks on one host share its memory, so they take turns here (every other check runs on all
ranks at once), each with every core: each measures the host's bandwidth, not a contended share
of it with a fraction of the cores.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.distributed as dist

from zhisuan.bench.core import chips, threads
from zhisuan.bench.core.accel import rocm_build
from zhisuan.bench.harness import checktime
from zhisuan.bench.validate import levels, stream_cpu, stream_gpu, stream_torch
from zhisuan.bench.validate.context import CheckContext
from zhisuan.kernels import registry

KERNELS = ("copy", "scale", "add", "triad")
TITLES = {
    "copy": "STREAM copy bandwidth",
    "scale": "STREAM scale bandwidth",
    "add": "STREAM add bandwidth",
    "triad": "STREAM triad bandwidth",
}
# numpy / torch round s*c before adding; a fused multiply-add (the CUDA compiler contracts by
# default) rounds once: the two differ by at most one rounding of each, 2 eps relative (2^-51 in fp64).
TRIAD_RTOL = 2.0**-51


RULE = "relative error: exact for copy/scale/add, one rounding for triad"


def relative_error(got, want) -> float:
    """max |got - want| / |want| over the array (numpy arrays or torch tensors, compared where want
    is; want is never 0)."""
    if isinstance(want, torch.Tensor):
        got = got.to(want.device)
        return float(((got - want).abs() / want.abs()).max()) if want.numel() else 0.0
    got, want = np.asarray(got), np.asarray(want)
    return float(np.max(np.abs(got - want) / np.abs(want))) if want.size else 0.0


def against(name: str, expected, reference_kind: str, dtype: torch.dtype = torch.float64) -> checktime.Check:
    """The check of one kernel's output: exact for copy, scale and add; triad within one rounding."""
    triad_rtol = TRIAD_RTOL * torch.finfo(dtype).eps / torch.finfo(torch.float64).eps
    return checktime.Check(expected, tolerance=triad_rtol if name == "triad" else 0.0, rule=RULE,
                           reference_kind=reference_kind, error=relative_error,
                           error_name="max relative error")  # fmt: skip


def _record(ctx: CheckContext, name: str, n: int, backend: str):
    result = ctx.record(f"stream-{name}", TITLES[name], backend=backend, shape={"n": n}, dtype="fp64")
    result.bytes = float(stream_cpu.BYTES_PER_ELEMENT[name] * n)
    return result


def _measure(ctx: CheckContext, result, fn, check: checktime.Check, extra: dict,
             measure_ceiling: Callable[[], float | None]):  # fmt: skip
    """Run once, check, and only then time and judge; a wrong output is a FAIL with nothing timed.

    measure_ceiling: the all-core copy (CPU), measured right before and right after the kernel,
    the better of the two kept (a neighbour's spell of load during one of them cannot lift the
    kernel above its ceiling); again so when a shortfall is re-measured. None on GPUs (datasheet).
    """
    result.extra.update(extra)
    before = measure_ceiling()
    if not checktime.check_then_time(result, fn, check, ctx.sampling(flush=False)):
        return ctx.finish(ctx.fail(result, f"wrong output: {result.error}", unit="GB/s"))
    rule = ctx.rule(result.op, "fp64")

    def basis(before, after):
        ceiling = None if before is None else max(before, after)
        if ceiling is not None:
            result.extra["ceiling_gbps"] = ceiling / 1e9
        return ctx.basis_figure(rule, "bandwidth", ceiling=ceiling) if rule else (None, "")

    def remeasure():
        before = measure_ceiling()
        checktime.time_one(checktime.Checked(result, fn), ctx.sampling(flush=False))
        return (result.bytes_per_s or 0.0, *basis(before, measure_ceiling()))

    figure, text = basis(before, measure_ceiling())
    ctx.judge(result, value=result.bytes_per_s, unit="GB/s", rule=rule, basis=figure, basis_text=text,
              scale=1e9, reason=result.extra.get("note", ""), remeasure=remeasure)  # fmt: skip
    return ctx.finish(result)


def copy_ceiling(ctx: CheckContext, source: np.ndarray, thread_count: int) -> float:
    """Bytes/s (read + written) of the all-core copy of source into a new array of its size.

    One contiguous slice per thread, each copied by numpy.copyto (which releases the GIL: the C
    library's memcpy), all threads at once; the median of the level's samples.
    """
    destination = np.empty_like(source)
    bounds = np.linspace(0, source.size, thread_count + 1).astype(int)
    parts = [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]

    def copy_part(part: slice) -> None:
        np.copyto(destination[part], source[part])

    with ThreadPoolExecutor(len(parts)) as pool:

        def copy() -> None:
            for _ in pool.map(copy_part, parts):
                pass

        copy()
        if not np.array_equal(destination, source):
            raise RuntimeError("numpy.copyto produced a different array: memory is corrupting data")
        samples = ctx.time(copy, flush=False)
    return 2.0 * source.nbytes / float(np.median(samples))


def torch_copy_bandwidth(ctx: CheckContext, source: torch.Tensor) -> float:
    """Bytes/s (read + written) of torch's device-to-device copy_ of source (for reference)."""
    destination = torch.empty_like(source)
    samples = ctx.time(lambda: destination.copy_(source), flush=False)
    return 2.0 * source.numel() * source.element_size() / float(np.median(samples))


def run_cpu(ctx: CheckContext) -> list:
    if ctx.local_world == 1 or ctx.dist is None:
        return _run_cpu(ctx, thread_count=threads.per_rank())
    records = []
    for turn in range(ctx.local_world):  # ranks of one host take turns (ranks are numbered host by host)
        if turn == ctx.rank % ctx.local_world:
            records = _run_cpu(ctx, thread_count=chips.cpu_cores())  # the turn's rank takes every core
        ctx.step(f"stream: waiting for the host's other ranks (turn {turn + 1} of {ctx.local_world})")
        ctx.progress.enter()
        try:
            dist.barrier(group=ctx.dist.control)
        finally:
            ctx.progress.leave()
    return records


def _run_cpu(ctx: CheckContext, thread_count: int) -> list:
    n = levels.stream_array_bytes(ctx.plan, "cpu", ctx.device.cache_bytes) // 8
    if stream_cpu.NUMBA_MISSING:
        return [ctx.skip(_record(ctx, k, n, "numba"), stream_cpu.NUMBA_MISSING) for k in KERNELS]
    with threads.limited(thread_count):
        return _stream_cpu(ctx, n, thread_count)


def _stream_cpu(ctx: CheckContext, n: int, thread_count: int) -> list:
    ctx.step("stream: allocating and compiling")
    arrays = stream_cpu.CpuStream(n)
    extra = {
        "array_bytes": 8 * n,
        "cache_bytes": ctx.device.cache_bytes,
        "past_cache": 8 * n >= levels.STREAM_CACHE_MULTIPLE * ctx.device.cache_bytes,
        "threads": thread_count,
        "host_turns": ctx.local_world > 1,
    }
    if not extra["past_cache"]:
        extra["note"] = "test sizes: arrays fit in cache, not a memory measurement"
    records = []
    for name in KERNELS:
        ctx.step(f"stream {name}")
        result = _record(ctx, name, n, "numba")
        target, expected = arrays.expected(name)
        kernel = arrays.kernel(name)

        def fn(kernel=kernel, target=target):
            kernel()
            return target  # what the check compares; returning it costs nothing

        ceiling = lambda: copy_ceiling(ctx, arrays.a, thread_count)  # noqa: E731
        records.append(_measure(ctx, result, fn, against(name, expected, "numpy"), extra, ceiling))
        del expected
    return records


def numba_cuda_missing(ctx: CheckContext) -> str | None:
    """None when the numba.cuda kernels can run on this device, else why not."""
    if ctx.kind != "cuda":
        return f"numba.cuda runs on NVIDIA GPUs only, not on {ctx.kind} devices"
    if rocm_build():
        return "numba.cuda runs on NVIDIA GPUs only; this torch is a ROCm build"
    return stream_gpu.toolchain_missing()


def run_torch(ctx: CheckContext, why_not_numba: str) -> list:
    """STREAM through torch's elementwise kernels (stream_torch), on any accelerator."""
    dtype = stream_torch.stream_dtype(ctx.device.torch_device)
    n = levels.stream_array_bytes(ctx.plan, ctx.kind, ctx.device.cache_bytes) // dtype.itemsize
    ctx.step("stream: allocating")
    arrays = stream_torch.TorchStream(n, ctx.device.torch_device, dtype)
    extra = {
        "array_bytes": dtype.itemsize * n,
        "cache_bytes": ctx.device.cache_bytes,
        "past_cache": dtype.itemsize * n >= levels.STREAM_CACHE_MULTIPLE * ctx.device.cache_bytes,
        "why_not_numba": why_not_numba,
    }
    name_of = registry.dtype_name(dtype)
    records = []
    for name in KERNELS:
        ctx.step(f"stream {name}")
        result = ctx.record(f"stream-{name}", TITLES[name], backend="torch", shape={"n": n}, dtype=name_of)
        result.bytes = float(arrays.bytes(name))
        check = against(name, arrays.expected(name), "torch on the cpu", dtype)
        records.append(_measure(ctx, result, arrays.kernel(name), check, extra, lambda: None))
    return records


def run_gpu(ctx: CheckContext) -> list:
    array_bytes = levels.stream_array_bytes(ctx.plan, ctx.kind, ctx.device.cache_bytes)
    n = array_bytes // 8
    from numba import cuda

    device = torch.device(ctx.device.torch_device)
    gen = torch.Generator(device=device)
    gen.manual_seed(5)
    a, b, c = (torch.rand(n, dtype=torch.float64, device=device, generator=gen) + 1.0 for _ in range(3))
    views = [cuda.as_cuda_array(t) for t in (a, b, c)]
    stream = cuda.external_stream(torch.cuda.current_stream(device).cuda_stream)
    blocks = stream_gpu.blocks_for(n, ctx.device.properties.get("sm_count"))
    scalar = 3.0
    torch_copy_bps = torch_copy_bandwidth(ctx, a)
    extra = {
        "array_bytes": 8 * n,
        "cache_bytes": ctx.device.cache_bytes,
        "past_cache": 8 * n >= levels.STREAM_CACHE_MULTIPLE * ctx.device.cache_bytes,
        "torch_copy_gbps": torch_copy_bps / 1e9,
        "blocks": blocks,
        "threads_per_block": stream_gpu.THREADS_PER_BLOCK,
    }
    expected_of = {
        "copy": lambda: (c, a.clone()),
        "scale": lambda: (b, scalar * c),
        "add": lambda: (c, a + b),
        "triad": lambda: (a, b + scalar * c),
    }
    records = []
    for name in KERNELS:
        ctx.step(f"stream {name}")
        result = _record(ctx, name, n, "numba.cuda")
        target, expected = expected_of[name]()

        def fn(name=name, target=target):
            stream_gpu.launch(name, *views, scalar, blocks=blocks, stream=stream)
            return target  # on the launch's stream (torch's current one): the check waits for it

        records.append(_measure(ctx, result, fn, against(name, expected, "torch"), extra, lambda: None))
        del expected
    return records


def run(ctx: CheckContext) -> list:
    if ctx.kind == "cpu":
        return run_cpu(ctx)
    why_not_numba = numba_cuda_missing(ctx)
    return run_torch(ctx, why_not_numba) if why_not_numba else run_gpu(ctx)
