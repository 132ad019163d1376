"""The CPU's achievable peak FLOP/s, measured by the FMA-throughput probe in zhisuan.kernels._C.

    from zhisuan.kernels.probe import fma_peak
    fma_peak("fp32")            # {'flops_per_s': 2.3e11, 'isa': 'avx512', 'threads': 2, ...}
    fma_peak("fp64", threads=1)

The probe (csrc/cpu/fma_probe.cpp) runs independent FMA chains, enough to cover the FMA latency
times the FMA pipes, on every requested core for `seconds`, and reports the best of a few windows
(other work on the machine only lowers a window). Results are cached per process: a peak does not
change between two benchmarks of one run, and measuring it costs a fraction of a second.
"""

from __future__ import annotations

from functools import cache

from zhisuan.kernels._ext import cpu_ext

DTYPES = ("fp32", "fp64")
WINDOWS = 4  # measuring windows per probe; the best one is reported


def fma_peak(
    dtype: str = "fp32", threads: int | None = None, seconds: float = 0.2, fresh: bool = False
) -> dict:
    """Measured peak of this CPU: dict(flops_per_s, isa, threads, dtype, seconds).

    threads=None uses every core OpenMP sees (OMP_NUM_THREADS if set). The widest instruction set
    the CPU runs is used. fresh=True measures again instead of returning this process's cached
    figure: a benchmark on a shared host pairs each round with a peak taken under the same
    neighbours. Raises ImportError (with the reason) when zhisuan.kernels._C is not built.
    """
    if dtype not in DTYPES:
        raise ValueError(f"fma_peak: dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"fma_peak: threads must be a positive int or None, got {threads!r}")
    if not 0 < seconds <= 60:
        raise ValueError(f"fma_peak: seconds must be in (0, 60], got {seconds!r}")
    measure = _measure.__wrapped__ if fresh else _measure
    return dict(measure(dtype, threads or 0, float(seconds)))


@cache
def _measure(dtype: str, threads: int, seconds: float) -> dict:
    return cpu_ext().fma_probe(dtype=dtype, threads=threads, seconds=seconds, isa="auto", windows=WINDOWS)
