"""The one thread-count policy (zhisuan.bench.core.threads): OMP_NUM_THREADS wins, else the cores
shared among a host's ranks; applied to torch, OpenMP/BLAS (threadpoolctl) and numba alike."""

import numba
import pytest
import torch
from threadpoolctl import threadpool_info

from zhisuan.bench.core import chips, threads
from zhisuan.kernels.matmul import cpp


def openmp_counts() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "openmp"}


def test_per_rank_shares_the_cores_unless_omp_num_threads_says(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = chips.cpu_cores()
    assert threads.per_rank() == cores
    assert threads.per_rank(2) == max(1, cores // 2)
    assert threads.per_rank(10 * cores) == 1  # never zero
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.per_rank(2) == 3
    for ignored in ("0", "-2", "two", ""):
        monkeypatch.setenv("OMP_NUM_THREADS", ignored)
        assert threads.per_rank() == cores


def test_limited_sets_every_pool_and_restores_it():
    before_torch, before_numba = torch.get_num_threads(), numba.get_num_threads()
    before_openmp = openmp_counts()
    with threads.limited(1):
        assert torch.get_num_threads() == 1 and numba.get_num_threads() == 1
        assert openmp_counts() <= {1}
        if cpp.cpp_missing("cpu") is None:  # our GEMM follows OpenMP's count
            assert cpp.threads() == 1
    assert torch.get_num_threads() == before_torch and numba.get_num_threads() == before_numba
    assert openmp_counts() == before_openmp
    with pytest.raises(ValueError, match="at least 1"), threads.limited(0):
        pass
