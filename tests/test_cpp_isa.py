"""The vocabulary the extensions share (csrc/cpu/isa.h, csrc/dtypes.h): one set of instruction-set
levels that every CPU kernel family selects the same way, and the DType / ReduceOp enums bound once
in zhisuan.kernels._C (and re-exported, the same objects, by zhisuan.kernels._cuda)."""

from __future__ import annotations

import math
import os

import pytest
import torch

from zhisuan.kernels._ext import cpu_ext, cpu_ext_missing, cuda_ext, cuda_ext_missing
from zhisuan.kernels.allreduce import REDUCE_OPS, shm
from zhisuan.kernels.matmul import cpp as cpp_matmul
from zhisuan.kernels.registry import dtype_name

pytestmark = pytest.mark.skipif(cpu_ext_missing() is not None, reason=str(cpu_ext_missing()))

LEVELS = ["avx512", "avx2", "portable"]  # widest first


def _attention_level(isa: str) -> str:
    q, k, v = (torch.randn(1, 1, 3, 8) for _ in range(3))
    o = torch.empty_like(q)
    return cpu_ext().attention_f32(
        q.data_ptr(), k.data_ptr(), v.data_ptr(), o.data_ptr(), 0, 1, 1, 1, 3, 3, 8,
        q.stride(), k.stride(), v.stride(), False, 1 / math.sqrt(8), isa,
    )  # fmt: skip


def _probe_level(isa: str) -> str:
    return cpu_ext().fma_probe(dtype="fp32", threads=1, seconds=0.005, isa=isa, windows=1)["isa"]


def _gemm_level(isa: str) -> str:
    try:
        cpp_matmul.set_isa(isa)
        return cpp_matmul.isa()
    finally:
        cpp_matmul.set_isa("auto")


def _shm_level(isa: str) -> str:
    name = f"/zhisuan-allreduce-isa-test-{os.getpid()}"
    comm = cpu_ext().ShmAllReduce(name, 0, 1, True, 4096, 1024, 5.0)
    try:
        comm.isa = isa
        return comm.isa
    finally:
        comm.close()


SELECTORS = {"gemm": _gemm_level, "attention": _attention_level, "fma_probe": _probe_level, "shm": _shm_level}


def test_levels_are_listed_widest_first_and_portable_always_runs():
    levels = cpu_ext().isas()
    assert levels == [level for level in LEVELS if level in levels]
    assert levels[-1] == "portable"


@pytest.mark.parametrize("family", SELECTORS)
def test_every_kernel_family_selects_levels_alike(family):
    select = SELECTORS[family]
    assert select("auto") == cpu_ext().isas()[0]
    for level in cpu_ext().isas():
        assert select(level) == level
    for level in set(LEVELS) - set(cpu_ext().isas()):
        with pytest.raises(ValueError, match=f"cannot run {level}"):
            select(level)
    # "scalar", the old second name of the fallback, is no level.
    with pytest.raises(ValueError, match=r"unknown ISA 'scalar' \(auto, avx512, avx2, portable\)"):
        select("scalar")


def test_dtype_and_reduce_op_enums_carry_the_python_names():
    ext = cpu_ext()
    assert list(ext.DType.__members__) == [dtype_name(d) for d in shm.DTYPES]
    assert list(ext.ReduceOp.__members__) == list(REDUCE_OPS)


@pytest.mark.skipif(cuda_ext_missing() is not None, reason=f"zhisuan.kernels._cuda: {cuda_ext_missing()}")
def test_the_cuda_extension_re_exports_the_same_enums():
    assert cuda_ext().DType is cpu_ext().DType
    assert cuda_ext().ReduceOp is cpu_ext().ReduceOp
