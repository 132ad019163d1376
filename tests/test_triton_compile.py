"""Our Triton kernels compiled for a GPU target without a GPU: triton.compile of an ASTSource for
GPUTarget("cuda", 90, 32) (Hopper) runs Triton's whole pipeline down to ptxas, which Triton ships.

What this shows: the production kernels, as loaded for CUDA tensors, compile for sm_90 with this
Triton (CI installs the newest); the fp8 matmul promotes its tensor-core partial sums to fp32 (its
PTX has add.f32, issue 13); the Hopper paths use wgmma. What it cannot show: that they run or are
fast (docs/benchmarks/h200.md has a GPU run). The kernel files are also checked to be plain Triton: no
interpreter workarounds, no private Triton names.

Arguments are specialised as Triton's launcher does for real tensors: pointers and integers that
are multiples of 16 carry divisibility 16, integers equal to 1 become constants. Skips, with the
reason, where this Triton cannot compile for the target (no ptxas, another compile API).
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest
import torch

from zhisuan.kernels.attention import triton as ta
from zhisuan.kernels.matmul import triton as tm
from zhisuan.kernels.triton_loader import load_kernel_module

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")

FP8 = getattr(torch, "float8_e4m3fn", None)
TRITON_TYPES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32", FP8: "fp8e4nv"}


class Pointer:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


class Descriptor:
    def __init__(self, dtype: torch.dtype, block_shape: list[int]):
        self.dtype, self.block_shape = dtype, block_shape


def compile_for(kernel, args: dict, *, capability: int = 90, num_warps: int = 4, num_stages: int = 3):
    """triton.compile of kernel (a JITFunction) for CUDA sm_<capability>, args given by name:
    Pointer, Descriptor, int, float, or the value of a constexpr parameter."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    signature, constants, attrs = {}, {}, {}
    for index, (name, param) in enumerate(zip(kernel.arg_names, kernel.params, strict=True)):
        value = args[name]
        if param.is_constexpr or (type(value) is int and value == 1):
            signature[name], constants[name] = "constexpr", value
        elif isinstance(value, Pointer):
            signature[name] = "*" + TRITON_TYPES[value.dtype]
            attrs[(index,)] = [["tt.divisibility", 16]]
        elif isinstance(value, Descriptor):
            signature[name] = f"tensordesc<{TRITON_TYPES[value.dtype]}{value.block_shape}>"
        elif isinstance(value, int):
            signature[name] = "i32"
            if value % 16 == 0:
                attrs[(index,)] = [["tt.divisibility", 16]]
        else:
            signature[name] = "fp32"
    source = ASTSource(kernel, signature, constants, attrs)
    target = GPUTarget("cuda", capability, 32)
    return triton.compile(source, target=target, options={"num_warps": num_warps, "num_stages": num_stages})


@triton.jit
def _copy_kernel(x_ptr, y_ptr, n, BLOCK_SIZE: tl.constexpr):
    offs = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    tl.store(y_ptr + offs, tl.load(x_ptr + offs, mask=offs < n), mask=offs < n)


@functools.cache
def compiler_missing() -> str | None:
    """None when this Triton compiles a trivial kernel for sm_90 here, else why not."""
    from triton.compiler.errors import CompilationError

    try:
        compile_for(_copy_kernel, {"x_ptr": Pointer(torch.float32), "y_ptr": Pointer(torch.float32), "n": 1000,
                                   "BLOCK_SIZE": 128})  # fmt: skip
    except CompilationError:
        raise  # Triton's front end failed on plain code: a fault to see, not a missing toolchain
    except Exception as exc:  # no ptxas, or another compile API
        return f"triton {triton.__version__} cannot compile for sm_90 here: {type(exc).__name__}: {exc}"
    return None


@pytest.fixture
def sm90():
    reason = compiler_missing()
    if reason:
        pytest.skip(reason)


def matmul_kernels():
    return load_kernel_module(tm.KERNELS, False)


def ptx_count(kernel, pattern: str) -> int:
    return len(re.findall(pattern, kernel.asm["ptx"]))


# ---- matmul --------------------------------------------------------------------------------------

SIZE = 8192  # M = N = K: a multiple of 16, as the benchmark's square shapes


def tiled_args(dtype: torch.dtype, config, b_column_major: bool) -> dict:
    b_strides = {"stride_bk": 1, "stride_bn": SIZE} if b_column_major else {"stride_bk": SIZE, "stride_bn": 1}
    return {
        "a_ptr": Pointer(dtype), "b_ptr": Pointer(dtype), "c_ptr": Pointer(dtype),
        "M": SIZE, "N": SIZE, "K": SIZE, "stride_am": SIZE, "stride_ak": 1, **b_strides,
        "stride_cm": SIZE, "stride_cn": 1, **config.kwargs,
    }  # fmt: skip


def tma_args(dtype: torch.dtype, config, b_transposed: bool) -> dict:
    bm, bn, bk = (config.kwargs[f"BLOCK_SIZE_{d}"] for d in "MNK")
    return {
        "a_desc": Descriptor(dtype, [bm, bk]),
        "b_desc": Descriptor(dtype, [bn, bk] if b_transposed else [bk, bn]),
        "c_desc": Descriptor(dtype, [bm, bn]),
        "M": SIZE, "N": SIZE, "K": SIZE, **config.kwargs,
        "NUM_SMS": 132, "A_TRANSPOSED": False, "B_TRANSPOSED": b_transposed,
    }  # fmt: skip


@pytest.mark.skipif(FP8 is None, reason="this torch has no float8_e4m3fn")
@pytest.mark.parametrize("variant", ["tiled", "tma_persistent"])
def test_fp8_matmul_promotes_partial_sums_to_fp32(sm90, variant):
    """With MAX_NUM_IMPRECISE_ACC = FP8_PROMOTION_INTERVAL the wgmma partial sums are added into
    the fp32 accumulator (add.f32) once per K tile; Triton's sm_90 default adds none."""
    config = tm.hopper_configs(1)[0]
    assert config.kwargs["BLOCK_SIZE_K"] >= tm.FP8_PROMOTION_INTERVAL  # Triton refuses more than K
    module = matmul_kernels()
    if variant == "tiled":
        kernel, args = module.matmul_kernel, tiled_args(FP8, config, b_column_major=True)
    else:
        kernel, args = module.matmul_kernel_tma_persistent, tma_args(FP8, config, b_transposed=True)
    args["MAX_NUM_IMPRECISE_ACC"] = tm.FP8_PROMOTION_INTERVAL
    compiled = compile_for(kernel, args, num_warps=config.num_warps, num_stages=config.num_stages)
    assert ptx_count(compiled, r"wgmma\.mma_async") > 0
    assert ptx_count(compiled, r"\badd\.f32") > 0


@pytest.mark.parametrize(
    ("variant", "dtype"),
    [("tiled", torch.bfloat16), ("tiled", torch.float32), ("tma_persistent", torch.bfloat16)],
    ids=str,
)
def test_matmul_compiles_for_hopper(sm90, variant, dtype):
    """The first (largest) Hopper config of each variant compiles to wgmma code."""
    config = tm.hopper_configs(dtype.itemsize)[0]
    module = matmul_kernels()
    if variant == "tiled":
        kernel, args = module.matmul_kernel, tiled_args(dtype, config, b_column_major=False)
    else:
        kernel, args = module.matmul_kernel_tma_persistent, tma_args(dtype, config, b_transposed=False)
    args["MAX_NUM_IMPRECISE_ACC"] = None
    compiled = compile_for(kernel, args, num_warps=config.num_warps, num_stages=config.num_stages)
    assert ptx_count(compiled, r"wgmma\.mma_async") > 0


def test_matmul_compiles_for_ampere(sm90):
    config = tm.ampere_configs(2)[0]
    args = {**tiled_args(torch.float16, config, b_column_major=False), "MAX_NUM_IMPRECISE_ACC": None}
    compiled = compile_for(matmul_kernels().matmul_kernel, args, capability=80, num_warps=config.num_warps,
                           num_stages=config.num_stages)  # fmt: skip
    assert ptx_count(compiled, r"mma\.sync") > 0


# ---- attention -----------------------------------------------------------------------------------


def attention_args(kernel_name: str, head_dim: int, config: tuple) -> dict:
    """Arguments of one attention kernel for bf16 (batch 2, 16 heads, seq 4096), contiguous."""
    seq, heads = 4096, 16
    bf16, fp32 = torch.bfloat16, torch.float32

    def strides(prefix: str, rows: str) -> dict:
        values = (heads * seq * head_dim, seq * head_dim, head_dim, 1)
        return {f"stride_{prefix}{axis}": v for axis, v in zip("bh" + rows + "d", values, strict=True)}

    bm, bn, _, _ = config
    common = {
        "GROUP_SIZE": 1, "HEAD_DIM": head_dim, "BLOCK_SIZE_D": ta.block_size_d(head_dim),
        "BLOCK_SIZE_M": bm, "BLOCK_SIZE_N": bn, "CAUSAL": True,
    }  # fmt: skip
    tensors = {
        "q_ptr": Pointer(bf16), "k_ptr": Pointer(bf16), "v_ptr": Pointer(bf16),
        **strides("q", "m"), **strides("k", "n"), **strides("v", "n"),
    }  # fmt: skip
    scales = {"sm_scale": 0.088, "qk_scale": 0.127}
    if kernel_name == "fwd":
        return {**tensors, "o_ptr": Pointer(bf16), "lse_ptr": Pointer(fp32), **strides("o", "m"),
                "HEADS_Q": heads, "SEQ_Q": seq, "SEQ_K": seq, "qk_scale": 0.127, **common}  # fmt: skip
    grads = {
        "do_ptr": Pointer(bf16),
        "lse_ptr": Pointer(fp32),
        "delta_ptr": Pointer(fp32),
        **strides("do", "m"),
    }
    if kernel_name == "dkdv":
        return {**tensors, **grads, "dk_ptr": Pointer(bf16), "dv_ptr": Pointer(bf16),
                **strides("dk", "n"), **strides("dv", "n"),
                "HEADS_Q": heads, "HEADS_KV": heads, "SEQ_Q": seq, "SEQ_K": seq, **scales, **common}  # fmt: skip
    return {**tensors, **grads, "dq_ptr": Pointer(bf16), **strides("dq", "m"),
            "HEADS_Q": heads, "SEQ_Q": seq, "SEQ_K": seq, **scales, **common}  # fmt: skip


@pytest.mark.parametrize(("kernel_name", "head_dim"), [("fwd", 128), ("fwd", 80), ("dkdv", 128), ("dq", 128)])
def test_attention_compiles_for_hopper(sm90, kernel_name, head_dim):
    """The smallest Hopper config of each kernel (the compile is what is checked, not the tile)."""
    module = load_kernel_module(ta.KERNELS, False)
    kernel = {
        "fwd": module.attn_fwd_kernel,
        "dkdv": module.attn_bwd_dkdv_kernel,
        "dq": module.attn_bwd_dq_kernel,
    }
    config = ta.hopper_configs()[kernel_name][-1]
    args = attention_args(kernel_name, head_dim, config)
    compiled = compile_for(kernel[kernel_name], args, num_warps=config[3], num_stages=config[2])
    assert ptx_count(compiled, r"wgmma\.mma_async") > 0


# ---- the kernel files are plain Triton ------------------------------------------------------------

KERNEL_FILES = [
    Path(tm.__file__).with_name("triton_kernels.py"),
    Path(ta.__file__).with_name("triton_kernels.py"),
]


@pytest.mark.parametrize("path", KERNEL_FILES, ids=lambda p: p.parent.name)
def test_kernel_files_are_plain_triton(path):
    """The production kernels import only triton and triton.language, name nothing about the
    interpreter, and use no private Triton names (tl.standard._elementwise_max was one): the
    interpreter's gaps are filled in zhisuan.kernels.triton_interpreter_shim."""
    tree = ast.parse(path.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert imported == {"triton", "triton.language"} and not any(
        isinstance(n, ast.ImportFrom) for n in ast.walk(tree)
    )
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    names |= {node.arg for node in ast.walk(tree) if isinstance(node, ast.arg)}
    names |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not [name for name in names if re.search(r"interpret|in_fp32|knobs", name, re.IGNORECASE)]
    private = [ast.unparse(node) for node in ast.walk(tree) if isinstance(node, ast.Attribute)
               and node.attr.startswith("_") and ast.unparse(node).split(".")[0] in ("tl", "triton")]  # fmt: skip
    assert not private
