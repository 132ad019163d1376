"""triton backend of matmul: our Triton kernels (kernels/matmul/triton_kernels.py).

Purpose: a tile-based GEMM written here, measured against cuBLAS. fp16 and bf16 with fp32
accumulation; fp32 through tf32 tensor-core math on the GPU; fp8 e4m3 on sm_89+ (Ada, Hopper);
output in the input dtype. Any M, N, K; any strides (transposed views are read in place).

Variants (names, not numbers):
- "tiled": one program per C tile, grouped tile order, masks. Every target.
- "tma_persistent": Hopper (sm_90+) with a Triton that has tensor descriptors: one program per SM,
  tiles through the copy engine. Needs each operand row- or column-major with 16-byte aligned rows.
On Hopper both are autotuned for each (M, N, K, dtype, layout), each is timed once with its best
config, and the faster one is kept for that key (the first call pays for this; the harness's
warm-up absorbs it).

Interpreter: with TRITON_INTERPRET=1 the backend also runs on CPU tensors through Triton's
interpreter (slow; its times mean nothing, so results are marked interpreted). There fp32 is
computed in full fp32 ("ieee"), not tf32. Triton 3.9 decides between compiling and interpreting
when @triton.jit runs, not when a kernel is launched, so the kernel file is loaded once per mode
(load_kernel_module) and the environment variable only decides whether the CPU path is offered.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
from collections.abc import Callable
from types import ModuleType

import torch

from zhisuan.kernels.devices import cuda_missing, triton_interpreter_on, triton_missing
from zhisuan.kernels.registry import BackendUnavailable, register

DTYPES = [torch.float16, torch.bfloat16, torch.float32]
FP8 = getattr(torch, "float8_e4m3fn", None)
if FP8 is not None:
    DTYPES.append(FP8)

# ---- loading the kernel files in the right mode ---------------------------------------------------


@functools.cache
def load_kernel_module(module_name: str, interpret: bool) -> ModuleType:
    """A fresh copy of the Triton kernel module `module_name`, its @triton.jit functions built for
    the interpreter (interpret=True, CPU tensors) or for the GPU compiler, whatever TRITON_INTERPRET
    says; the knob is restored afterwards."""
    import triton

    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot find the Triton kernel module {module_name}")
    mode = "interpreted" if interpret else "compiled"
    spec = importlib.util.spec_from_file_location(f"{module_name}__{mode}", spec.origin)
    with triton.knobs.runtime.scope():
        triton.knobs.runtime.interpret = interpret
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def kernels_for(device: torch.device) -> ModuleType:
    return load_kernel_module("zhisuan.kernels.matmul.triton_kernels", device.type == "cpu")


# ---- availability -------------------------------------------------------------------------------


def triton_missing_on(device_type: str) -> str | None:
    """None when Triton kernels can run on device_type here, else why not (shared with attention)."""
    if device_type == "cpu":
        if not triton_interpreter_on():
            return "triton: no CUDA device (set TRITON_INTERPRET=1 to run the interpreter on CPU)"
        return triton_missing()
    if device_type == "cuda":
        reason = cuda_missing() or triton_missing()
        if reason:
            return reason
        major, minor = torch.cuda.get_device_capability()
        if major < 8:
            return f"triton kernels here need compute capability 8.0 or newer (this GPU is sm_{major}{minor})"
        return None
    return f"triton does not run on {device_type}"


def fp8_missing(device: torch.device) -> str | None:
    """None when fp8 e4m3 products can run on device (sm_89+, or the interpreter), else why not."""
    if device.type == "cpu":
        return None
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < (8, 9):
        return f"fp8e4m3 matmul needs compute capability 8.9 or newer (Ada, Hopper); this GPU is sm_{major}{minor}"
    return None


# ---- targets and their autotuning configs -------------------------------------------------------


def target_for(device: torch.device) -> str:
    """'interpreter', 'hopper' (sm_90+) or 'ampere' (sm_80-sm_89): which config list to tune over."""
    if device.type == "cpu":
        return "interpreter"
    major, _ = torch.cuda.get_device_capability(device)
    return "hopper" if major >= 9 else "ampere"


def _config(bm: int, bn: int, bk: int, group: int, stages: int, warps: int):
    import triton

    return triton.Config(
        {"BLOCK_SIZE_M": bm, "BLOCK_SIZE_N": bn, "BLOCK_SIZE_K": bk, "GROUP_SIZE_M": group},
        num_stages=stages,
        num_warps=warps,
    )


def interpreter_configs(itemsize: int) -> list:
    """One small tile: the interpreter is slow and times nothing worth tuning. GROUP_SIZE_M 2 so
    small test matrices still walk the grouped order with a partial last group."""
    return [_config(32, 32, 32, 2, 1, 4)]


def hopper_configs(itemsize: int) -> list:
    """H100/H200 (wgmma): large tiles, 8 warps for the 128×256 shapes; BLOCK_SIZE_K scaled so a
    stage stays 64-128 bytes deep along K (fp8 128, fp16/bf16 64, tf32 32)."""
    bk = 128 // itemsize if itemsize < 4 else 32
    return [
        _config(128, 256, bk, 8, 3, 8),
        _config(256, 128, bk, 8, 3, 8),
        _config(128, 128, bk, 8, 4, 8),
        _config(128, 128, bk, 8, 4, 4),
        _config(128, 64, bk, 8, 4, 4),
        _config(64, 128, bk, 8, 4, 4),
        _config(64, 64, bk, 8, 5, 4),
    ]


def ampere_configs(itemsize: int) -> list:
    """A100-class and Ada (mma.sync): the classic tile set with 3-5 stages."""
    bk = 32 if itemsize >= 2 else 64
    return [
        _config(128, 256, bk, 8, 3, 8),
        _config(256, 128, bk, 8, 3, 8),
        _config(128, 128, bk, 8, 4, 4),
        _config(128, 64, bk, 8, 4, 4),
        _config(64, 128, bk, 8, 4, 4),
        _config(64, 64, bk, 8, 5, 2),
        _config(128, 128, 2 * bk, 8, 3, 8),
    ]


CONFIGS: dict[str, Callable[[int], list]] = {
    "interpreter": interpreter_configs,
    "hopper": hopper_configs,
    "ampere": ampere_configs,
}


def _shared_memory_limit(device: torch.device) -> int:
    from triton.runtime import driver

    return driver.active.utils.get_device_properties(device.index)["max_shared_mem"]


def _fits_in_shared_memory(itemsize: int, limit: int | None) -> Callable:
    """early_config_prune: drop configs whose pipeline stages (plus the C tile the TMA epilogue
    stages) exceed the device's shared memory."""

    def prune(configs, named_args, **kwargs):
        if limit is None:
            return configs
        kept = []
        for cfg in configs:
            kw = cfg.kwargs
            stage = (kw["BLOCK_SIZE_M"] + kw["BLOCK_SIZE_N"]) * kw["BLOCK_SIZE_K"] * itemsize
            epilogue = kw["BLOCK_SIZE_M"] * kw["BLOCK_SIZE_N"] * itemsize
            if cfg.num_stages * stage + epilogue <= limit:
                kept.append(cfg)
        return kept or configs[-1:]

    return prune


def _set_descriptor_blocks(nargs: dict) -> None:
    """pre_hook of the TMA variant: the descriptors' block shapes follow the config being run."""
    bm, bn, bk = nargs["BLOCK_SIZE_M"], nargs["BLOCK_SIZE_N"], nargs["BLOCK_SIZE_K"]
    nargs["a_desc"].block_shape = [bk, bm] if nargs["A_TRANSPOSED"] else [bm, bk]
    nargs["b_desc"].block_shape = [bn, bk] if nargs["B_TRANSPOSED"] else [bk, bn]
    nargs["c_desc"].block_shape = [bm, bn]


@functools.cache
def autotuned_kernel(variant: str, device: torch.device, itemsize: int):
    """The variant's @triton.jit kernel wrapped in @triton.autotune with its target's configs."""
    import triton

    module = kernels_for(device)
    target = target_for(device)
    configs = CONFIGS[target](itemsize)
    limit = None if device.type == "cpu" else _shared_memory_limit(device)
    if variant == "tma_persistent":
        for cfg in configs:
            cfg.pre_hook = _set_descriptor_blocks
        fn = module.matmul_kernel_tma_persistent
    else:
        fn = module.matmul_kernel
    return triton.autotune(
        configs=configs,
        key=["M", "N", "K"],
        prune_configs_by={"early_config_prune": _fits_in_shared_memory(itemsize, limit)},
    )(fn)


# ---- host wrappers: check -> allocate -> launch -------------------------------------------------


def _input_precision(a: torch.Tensor) -> str:
    # tf32 on tensor cores for fp32 on the GPU (math_dtypes below); the interpreter multiplies in
    # fp32 anyway, and saying "ieee" there keeps that explicit. Ignored for 16- and 8-bit inputs.
    return "tf32" if a.is_cuda and a.dtype == torch.float32 else "ieee"


def _dot_in_fp32(a: torch.Tensor) -> bool:
    # Triton 3.9's interpreter feeds bf16 to numpy as uint16 bit patterns in tl.dot; widening to
    # fp32 first is exact and gives the math the tensor cores do (bf16 products, fp32 sums).
    return a.device.type == "cpu" and a.dtype == torch.bfloat16


def _kernel_output_dtype(a: torch.Tensor) -> torch.dtype:
    # Triton 3.9's interpreter converts fp32 to bf16 by truncation and to fp8 with a wrong carry
    # (31.9 -> 16); there the kernel writes fp32 and torch rounds to nearest even, as the GPU does.
    if a.device.type == "cpu" and a.dtype in (torch.bfloat16, FP8):
        return torch.float32
    return a.dtype


def _check(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.dtype not in DTYPES:
        raise TypeError(f"triton matmul: dtype {a.dtype} not supported (fp16, bf16, fp32, fp8e4m3)")
    if a.dtype == FP8:
        reason = fp8_missing(a.device)
        if reason:
            raise BackendUnavailable(f"matmul backend 'triton' unavailable: {reason}")


def matmul_tiled(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """C = A @ B with the grouped tile kernel: any strides, any M, N, K."""
    _check(a, b)
    M, K = a.shape
    N = b.shape[1]
    c = torch.empty((M, N), dtype=_kernel_output_dtype(a), device=a.device)
    kernel = autotuned_kernel("tiled", a.device, a.element_size())

    def grid(meta):
        return (cdiv(M, meta["BLOCK_SIZE_M"]) * cdiv(N, meta["BLOCK_SIZE_N"]),)

    with torch.cuda.device(a.device) if a.is_cuda else contextlib.nullcontext():
        kernel[grid](
            a, b, c, M, N, K,
            a.stride(0), a.stride(1), b.stride(0), b.stride(1), c.stride(0), c.stride(1),
            INPUT_PRECISION=_input_precision(a), DOT_IN_FP32=_dot_in_fp32(a),
        )  # fmt: skip
    return c.to(a.dtype)


def tma_layout_missing(a: torch.Tensor, b: torch.Tensor) -> str | None:
    """None when both operands can be tensor-descriptor bases, else why not (the copy engine needs
    a unit stride, 16-byte aligned rows and a 16-byte aligned start)."""
    for name, t in (("a", a), ("b", b)):
        if t.stride(1) != 1 and t.stride(0) != 1:
            return f"{name} has no unit stride (strides {t.stride()})"
        lead = t.stride(0) if t.stride(1) == 1 else t.stride(1)
        if (lead * t.element_size()) % 16 or t.data_ptr() % 16:
            return f"{name}'s rows are not 16-byte aligned (strides {t.stride()})"
    if (b.shape[1] * a.element_size()) % 16:
        return f"C's rows ({b.shape[1]} elements) are not 16-byte aligned"
    return None


def _descriptor(t: torch.Tensor, transposed: bool):
    from triton.tools.tensor_descriptor import TensorDescriptor

    stored = t.t() if transposed else t
    # The block shape is a placeholder: _set_descriptor_blocks sets it per config before launch.
    return TensorDescriptor(stored, list(stored.shape), list(stored.stride()), [16, 16])


def matmul_tma_persistent(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """C = A @ B with the persistent tensor-descriptor kernel (row- or column-major operands)."""
    _check(a, b)
    reason = tma_layout_missing(a, b)
    if reason:
        raise ValueError(f"triton matmul (tma_persistent): {reason}")
    M, K = a.shape
    N = b.shape[1]
    c = torch.empty((M, N), dtype=_kernel_output_dtype(a), device=a.device)
    a_transposed, b_transposed = a.stride(1) != 1, b.stride(1) != 1
    kernel = autotuned_kernel("tma_persistent", a.device, a.element_size())
    num_sms = torch.cuda.get_device_properties(a.device).multi_processor_count if a.is_cuda else 4

    def grid(meta):
        tiles = cdiv(M, meta["BLOCK_SIZE_M"]) * cdiv(N, meta["BLOCK_SIZE_N"])
        return (min(num_sms, tiles),)

    with torch.cuda.device(a.device) if a.is_cuda else contextlib.nullcontext():
        kernel[grid](
            _descriptor(a, a_transposed), _descriptor(b, b_transposed), _descriptor(c, False), M, N, K,
            NUM_SMS=num_sms, A_TRANSPOSED=a_transposed, B_TRANSPOSED=b_transposed,
            INPUT_PRECISION=_input_precision(a), DOT_IN_FP32=_dot_in_fp32(a),
        )  # fmt: skip
    return c.to(a.dtype)


VARIANTS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "tiled": matmul_tiled,
    "tma_persistent": matmul_tma_persistent,
}


def tma_missing(device: torch.device) -> str | None:
    """None when the persistent TMA variant can run on device, else why not."""
    if device.type == "cpu":
        return "the interpreter runs the tiled variant unless asked for another"
    if torch.cuda.get_device_capability(device)[0] < 9:
        return "tensor descriptors (TMA) need Hopper (sm_90) or newer"
    try:
        from triton.tools.tensor_descriptor import TensorDescriptor  # noqa: F401
    except ImportError:
        return "this Triton has no triton.tools.tensor_descriptor"
    return None


_chosen: dict[tuple, str] = {}


def _layout_key(a: torch.Tensor, b: torch.Tensor) -> tuple:
    return (tuple(a.shape), b.shape[1], a.dtype, a.stride(1) == 1, b.stride(1) == 1, a.device)


def choose_variant(a: torch.Tensor, b: torch.Tensor) -> str:
    """The variant matmul() runs for these inputs: the faster of the eligible ones, timed once per key."""
    candidates = ["tiled"]
    if tma_missing(a.device) is None and tma_layout_missing(a, b) is None:
        candidates.append("tma_persistent")
    if len(candidates) == 1:
        return candidates[0]
    key = _layout_key(a, b)
    if key not in _chosen:
        import triton.testing

        times = {}
        for name in candidates:
            VARIANTS[name](a, b)  # autotunes this variant for the key first
            times[name] = triton.testing.do_bench(lambda name=name: VARIANTS[name](a, b), warmup=10, rep=50)
        _chosen[key] = min(times, key=times.get)
    return _chosen[key]


def _fp8_operands(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hopper's fp8 tensor cores read A row-major and B column-major (K contiguous in both); with
    another layout Triton transposes in registers and cannot pipeline the loads, so such an
    operand is copied once into that layout here (counted in the call's time)."""
    if a.is_cuda:
        if a.stride(1) != 1:
            a = a.contiguous()
        if b.stride(0) != 1:
            b = b.t().contiguous().t()
    return a, b


@register(
    "matmul",
    "triton",
    devices=("cuda", "cpu"),
    dtypes=DTYPES,
    probe=triton_missing_on,
    priority=20,
    interpreted=lambda device_type: device_type == "cpu",
    math_dtypes={"fp32": "tf32"},
    describe=lambda a, b: {"triton_variant": choose_variant(*_fp8_operands(a, b))},
    description="Triton GEMM (grouped tiles; persistent TMA variant on Hopper), fp32 accumulation",
)
def matmul_triton(a: torch.Tensor, b: torch.Tensor, *, variant: str | None = None) -> torch.Tensor:
    """C = A @ B with our Triton kernels; variant None picks the faster eligible one."""
    _check(a, b)
    if a.dtype == FP8:
        a, b = _fp8_operands(a, b)
    name = variant or choose_variant(a, b)
    if name not in VARIANTS:
        raise ValueError(f"triton matmul: unknown variant {name!r}; variants: {', '.join(VARIANTS)}")
    return VARIANTS[name](a, b)


def cdiv(x: int, y: int) -> int:
    return (x + y - 1) // y
