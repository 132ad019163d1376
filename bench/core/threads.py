"""How many threads this process computes with, and setting every thread pool in it to that count.

The policy, in one place (`zhisuan run`, `zhisuan validate` and the collectives' ranks use it):
  - OMP_NUM_THREADS, when set to a positive integer, wins: it is the user's or the launcher's
    choice (our rank spawner sets it per rank; torchrun sets 1 when it starts several ranks per host).
  - Otherwise the physical cores this process may run on (chips.cpu_cores: its CPU affinity, the
    hardware threads of an SMT core counted once, as torch's own default does), shared evenly
    among the ranks on this host, at least one each.

A count is applied to every pool the process computes with: torch's intra-op pool, the OpenMP and
BLAS runtimes loaded in the process (through threadpoolctl: the libgomp that torch and
zhisuan.kernels._C share, numpy's OpenBLAS or MKL), and numba's workers. Our C++ GEMM and the FMA
probe follow OpenMP's count unless told otherwise (zhisuan.kernels.matmul.cpp.set_threads), so one
count reaches them too.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import torch
from threadpoolctl import threadpool_limits

from zhisuan.bench.core import chips


def explicit() -> int | None:
    """OMP_NUM_THREADS when it is a positive integer, else None."""
    text = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def per_rank(local_world: int = 1) -> int:
    """Threads for one of `local_world` ranks on this host (1: a single process)."""
    return explicit() or max(1, chips.cpu_cores() // max(1, local_world))


def _numba():
    """numba, where this process has imported it (its pools exist only then)."""
    return sys.modules.get("numba")


def _set_numba(threads: int) -> None:
    numba = _numba()
    if numba is not None:
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


def apply(threads: int) -> int:
    """Set every pool of this process to `threads`, for the rest of the process; returns the count."""
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)  # OpenMP and BLAS runtimes; kept until changed again
    _set_numba(threads)
    return threads


@contextlib.contextmanager
def limited(threads: int) -> Iterator[int]:
    """Every pool at `threads` inside the block; the previous counts come back afterwards."""
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    previous_torch = torch.get_num_threads()
    numba = _numba()
    previous_numba = numba.get_num_threads() if numba is not None else None
    with threadpool_limits(limits=threads):
        torch.set_num_threads(threads)
        _set_numba(threads)
        try:
            yield threads
        finally:
            torch.set_num_threads(previous_torch)
            if previous_numba is not None:
                numba.set_num_threads(previous_numba)
