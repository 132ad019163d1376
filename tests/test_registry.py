import pytest
import torch

from zhisuan import kernels
from zhisuan.kernels import registry
from zhisuan.kernels.registry import BackendUnavailable


@pytest.fixture
def temp_backend():
    names = []

    def make(name, **kwargs):
        registry.register("matmul", name, **kwargs)(lambda a, b: a @ b)
        names.append(name)
        return registry.get("matmul", name)

    yield make
    for name in names:
        registry.unregister("matmul", name)


def test_torch_backends_registered_as_baselines():
    for op in ("matmul", "attention", "all_reduce"):
        statuses = kernels.backends(op)
        assert statuses["torch"].baseline


def test_unavailable_backend_raises_with_reason(temp_backend):
    temp_backend(
        "test-never", devices=("cpu",), dtypes=(torch.float32,), probe=lambda d: "no widget attached"
    )
    a = torch.randn(3, 3)
    with pytest.raises(BackendUnavailable, match="no widget attached"):
        kernels.matmul(a, a, backend="test-never")
    assert kernels.backends("matmul")["test-never"].reason == "no widget attached"
    assert not kernels.backends("matmul")["test-never"].available


def test_dtype_and_device_capabilities_named_in_reason(temp_backend):
    b = temp_backend("test-fp32only", devices=("cuda",), dtypes=(torch.float32,))
    assert "bf16 not supported" in b.why_not("cuda", torch.bfloat16)
    assert "does not run on cpu" in b.why_not("cpu", torch.float32)


def test_automatic_selection_prefers_priority(temp_backend):
    temp_backend("test-high", devices=("cpu",), dtypes=(torch.float64,), priority=1000)
    assert registry.select("matmul", "cpu", torch.float64).name == "test-high"


def test_automatic_selection_passes_over_interpreted_backends(temp_backend):
    # An interpreted backend (Triton under TRITON_INTERPRET=1) is correct but slow: used when named only.
    temp_backend(
        "test-interp", devices=("cpu",), dtypes=(torch.float64,), priority=2000, interpreted=lambda d: True
    )
    assert registry.select("matmul", "cpu", torch.float64).name != "test-interp"
    assert registry.select("matmul", "cpu", torch.float64, "test-interp").name == "test-interp"


def test_dtypes_per_device(temp_backend):
    b = temp_backend(
        "test-split", devices=("cpu", "cuda"), dtypes={"cpu": (torch.float64,), "cuda": (torch.float16,)}
    )
    assert b.dtypes == {torch.float64, torch.float16}
    assert b.why_not("cpu", torch.float64) is None
    assert "fp16 not supported by test-split on cpu (supports: fp64)" in b.why_not("cpu", torch.float16)
    assert kernels.backends("matmul", "cpu")["test-split"].dtypes == ("fp64",)
    assert kernels.backends("matmul")["test-split"].dtypes_by_device == {"cpu": ("fp64",), "cuda": ("fp16",)}
    with pytest.raises(ValueError, match="does not list: npu"):
        registry.register("matmul", "test-bad", devices=("cpu",), dtypes={"npu": (torch.float16,)})


def test_duplicate_registration_and_unknown_names_rejected(temp_backend):
    temp_backend("test-dup", devices=("cpu",), dtypes=(torch.float32,))
    with pytest.raises(ValueError, match="already registered"):
        registry.register("matmul", "test-dup", devices=("cpu",), dtypes=())(lambda a, b: a)
    with pytest.raises(ValueError, match="unknown matmul backend 'nope'"):
        kernels.matmul(torch.ones(1, 1), torch.ones(1, 1), backend="nope")
    with pytest.raises(ValueError, match="unknown op"):
        registry.register("conv", "x", devices=("cpu",), dtypes=())


def test_no_backend_at_all_lists_every_reason():
    with pytest.raises(BackendUnavailable, match="no matmul backend for int8 on cpu"):
        registry.select("matmul", "cpu", torch.int8)


def test_parse_dtype():
    assert registry.parse_dtype("bf16") is torch.bfloat16
    assert registry.parse_dtype("float32") is torch.float32
    with pytest.raises(ValueError, match="unknown dtype 'fp13'"):
        registry.parse_dtype("fp13")


def test_info_lists_dtypes_per_device(capsys):
    # cpp matmul runs fp32/fp64 on the CPU and fp16/bf16 on GPUs: the CPU line must not offer bf16.
    from zhisuan.bench.cli import main

    assert main(["info", "--no-probe"]) == 0
    out = capsys.readouterr().out
    assert "cpu: fp32,fp64" in out and "cuda: bf16,fp16" in out
    assert kernels.backends("matmul")["cpp"].dtypes_by_device["cpu"] == ("fp32", "fp64")
