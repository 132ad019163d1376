"""STREAM's four kernels for NVIDIA GPUs, written with numba.cuda (grid-stride loops).

Same kernels and byte counts as stream_cpu. The arrays may be any CUDA array (numba device
arrays, or torch tensors through numba.cuda.as_cuda_array); launches go on the stream given, so the
harness's CUDA-event timer on that stream times exactly the kernel.

Under NUMBA_ENABLE_CUDASIM=1 (numba's CUDA simulator) the same kernels run on the CPU, one Python
thread per GPU thread: that is how CI checks them without a GPU (tiny arrays: the simulator is slow).
"""

from __future__ import annotations

try:
    from numba import cuda
except ImportError as exc:  # numba is a dependency; its absence is reported, never a crash
    cuda = None
    NUMBA_MISSING = f"numba is not installed ({exc})"
else:
    NUMBA_MISSING = None

THREADS_PER_BLOCK = 256
BLOCKS_PER_SM = 8  # enough resident blocks to hide memory latency; the loops stride over the rest

if cuda is not None:

    @cuda.jit
    def _copy(a, c):
        start, step = cuda.grid(1), cuda.gridsize(1)
        for i in range(start, a.shape[0], step):
            c[i] = a[i]

    @cuda.jit
    def _scale(b, c, s):
        start, step = cuda.grid(1), cuda.gridsize(1)
        for i in range(start, b.shape[0], step):
            b[i] = s * c[i]

    @cuda.jit
    def _add(a, b, c):
        start, step = cuda.grid(1), cuda.gridsize(1)
        for i in range(start, a.shape[0], step):
            c[i] = a[i] + b[i]

    @cuda.jit
    def _triad(a, b, c, s):
        start, step = cuda.grid(1), cuda.gridsize(1)
        for i in range(start, a.shape[0], step):
            a[i] = b[i] + s * c[i]

    KERNELS = {"copy": _copy, "scale": _scale, "add": _add, "triad": _triad}
else:
    KERNELS = {}


def toolchain_missing() -> str | None:
    """None when numba.cuda can compile and launch here, else why not (an honest SKIP, not a FAIL)."""
    if NUMBA_MISSING:
        return NUMBA_MISSING
    if not cuda.is_available():
        return "numba.cuda sees no usable GPU (driver or CUDA bindings missing)"
    try:  # compile and launch one kernel: libNVVM, numba's typing and the driver, all at once
        probe = cuda.device_array(1)
        KERNELS["copy"][1, 1](probe, probe)
        cuda.synchronize()
    except Exception as exc:  # e.g. numba-cuda 0.30.4 with NumPy 2.5 on an H200 image (np.row_stack)
        return f"numba.cuda cannot compile and launch a kernel here: {type(exc).__name__}: {exc}"
    return None


def blocks_for(n: int, sm_count: int | None) -> int:
    """Blocks of a launch: enough to cover n, capped at BLOCKS_PER_SM per SM (grid-stride beyond)."""
    needed = max(1, -(-n // THREADS_PER_BLOCK))
    return min(needed, BLOCKS_PER_SM * sm_count) if sm_count else needed


def launch(name: str, a, b, c, scalar: float, *, blocks: int, threads: int = THREADS_PER_BLOCK,
           stream=0) -> None:  # fmt: skip
    """Run one kernel over STREAM's arrays a, b, c (the ones it does not use are ignored)."""
    if NUMBA_MISSING:
        raise RuntimeError(NUMBA_MISSING)
    kernel = KERNELS[name][blocks, threads, stream]
    if name == "copy":
        kernel(a, c)
    elif name == "scale":
        kernel(b, c, scalar)
    elif name == "add":
        kernel(a, b, c)
    else:
        kernel(a, b, c, scalar)
