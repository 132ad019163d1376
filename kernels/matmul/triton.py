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

Set-up and launch are apart: prepare_matmul(a, b) checks, picks the variant, allocates C and builds
the launch arguments (tensor descriptors included) once, and returns the launch; the harness times
only that (Backend.prepare). matmul_triton(a, b) is prepare-then-launch.

Interpreter: with TRITON_INTERPRET=1 the backend also runs on CPU tensors through Triton's
interpreter (slow; its times mean nothing, so results are marked interpreted). The interpreter
ignores input_precision and multiplies fp32 in full fp32, not tf32. See zhisuan.kernels.triton_loader.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from zhisuan.kernels.devices import rocm_build, triton_missing_on
from zhisuan.kernels.registry import BackendUnavailable, register
from zhisuan.kernels.triton_loader import cdiv, kernels_for, on_device, shared_memory_limit, target_for

KERNELS = "zhisuan.kernels.matmul.triton_kernels"
DTYPES = [torch.float16, torch.bfloat16, torch.float32]
FP8 = getattr(torch, "float8_e4m3fn", None)
if FP8 is not None:
    DTYPES.append(FP8)

# Hopper's fp8 tensor cores (wgmma) sum products in an accumulator narrower than fp32 (about 14
# bits of mantissa: DeepSeek-V3 technical report, 2024, section 3.3.2), and Triton's default on
# sm_90 (max_num_imprecise_acc 2^30) keeps a whole K loop there: at K = 8192 that is 8192 products
# summed with ~14 bits. With 128, Triton adds the partial sum into a separate fp32 accumulator
# after every 128 products (4 wgmma k-steps of 32, one K tile of the Hopper fp8 configs), the
# interval DeepSeek-V3 uses. Its cost: one fp32 add per accumulator element per K tile, and a
# second accumulator in registers. Must not exceed BLOCK_SIZE_K (Triton checks).
FP8_PROMOTION_INTERVAL = 128


def fp8_missing(device: torch.device) -> str | None:
    """None when fp8 e4m3 products can run on device (sm_89+, or the interpreter), else why not."""
    if device.type == "cpu":
        return None
    if rocm_build():
        return "fp8e4m3 matmul here targets NVIDIA's e4m3fn on sm_89+; ROCm GPUs are not covered"
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < (8, 9):
        return f"fp8e4m3 matmul needs compute capability 8.9 or newer (Ada, Hopper); this GPU is sm_{major}{minor}"
    return None


def max_num_imprecise_acc(a: torch.Tensor) -> int | None:
    """The kernels' MAX_NUM_IMPRECISE_ACC for a's dtype and device (None: Triton's default)."""
    if a.dtype == FP8 and a.is_cuda and torch.cuda.get_device_capability(a.device)[0] == 9:
        return FP8_PROMOTION_INTERVAL
    return None


# ---- autotuning configs, one function per target ------------------------------------------------


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
    stage stays 64-128 bytes deep along K (fp8 128, fp16/bf16 64, tf32 32). fp8 leaves out
    128×256: with the second accumulator of FP8_PROMOTION_INTERVAL it needs 2 × 128 fp32 registers
    per thread and spills (192 bytes in the tiled kernel, ptxas for sm_90 under Triton 3.9), where
    256×128 fits in 254 registers."""
    bk = 128 // itemsize if itemsize < 4 else 32
    wide = [] if itemsize == 1 else [_config(128, 256, bk, 8, 3, 8)]
    return [
        *wide,
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

    module = kernels_for(KERNELS, device)
    configs = CONFIGS[target_for(device)](itemsize)
    if variant == "tma_persistent":
        for cfg in configs:
            cfg.pre_hook = _set_descriptor_blocks
        fn = module.matmul_kernel_tma_persistent
    else:
        fn = module.matmul_kernel
    return triton.autotune(
        configs=configs,
        key=["M", "N", "K"],
        prune_configs_by={
            "early_config_prune": _fits_in_shared_memory(itemsize, shared_memory_limit(device))
        },
    )(fn)


# ---- host wrappers: check -> allocate -> launch (prepare_* return the launch) -------------------


def _check(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.dtype not in DTYPES:
        raise TypeError(f"triton matmul: dtype {a.dtype} not supported (fp16, bf16, fp32, fp8e4m3)")
    if a.dtype == FP8:
        reason = fp8_missing(a.device)
        if reason:
            raise BackendUnavailable(f"matmul backend 'triton' unavailable: {reason}")


def prepare_tiled(a: torch.Tensor, b: torch.Tensor) -> Callable[[], torch.Tensor]:
    """The launch of C = A @ B with the grouped tile kernel (any strides, any M, N, K); C allocated."""
    M, K = a.shape
    N = b.shape[1]
    c = torch.empty((M, N), dtype=a.dtype, device=a.device)
    kernel = autotuned_kernel("tiled", a.device, a.element_size())
    args = (a, b, c, M, N, K, a.stride(0), a.stride(1), b.stride(0), b.stride(1), c.stride(0), c.stride(1))
    imprecise = max_num_imprecise_acc(a)

    def grid(meta):
        return (cdiv(M, meta["BLOCK_SIZE_M"]) * cdiv(N, meta["BLOCK_SIZE_N"]),)

    def launch() -> torch.Tensor:
        with on_device(a):
            kernel[grid](*args, MAX_NUM_IMPRECISE_ACC=imprecise)
        return c

    return launch


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


def prepare_tma_persistent(a: torch.Tensor, b: torch.Tensor) -> Callable[[], torch.Tensor]:
    """The launch of C = A @ B with the persistent tensor-descriptor kernel (row- or column-major
    operands); C and the three descriptors are made here, once."""
    reason = tma_layout_missing(a, b)
    if reason:
        raise ValueError(f"triton matmul (tma_persistent): {reason}")
    M, K = a.shape
    N = b.shape[1]
    c = torch.empty((M, N), dtype=a.dtype, device=a.device)
    a_transposed, b_transposed = a.stride(1) != 1, b.stride(1) != 1
    kernel = autotuned_kernel("tma_persistent", a.device, a.element_size())
    num_sms = torch.cuda.get_device_properties(a.device).multi_processor_count if a.is_cuda else 4
    descriptors = (_descriptor(a, a_transposed), _descriptor(b, b_transposed), _descriptor(c, False))
    constants = {
        "NUM_SMS": num_sms,
        "A_TRANSPOSED": a_transposed,
        "B_TRANSPOSED": b_transposed,
        "MAX_NUM_IMPRECISE_ACC": max_num_imprecise_acc(a),
    }

    def grid(meta):
        tiles = cdiv(M, meta["BLOCK_SIZE_M"]) * cdiv(N, meta["BLOCK_SIZE_N"])
        return (min(num_sms, tiles),)

    def launch() -> torch.Tensor:
        with on_device(a):
            kernel[grid](*descriptors, M, N, K, **constants)
        return c

    return launch


VARIANTS: dict[str, Callable[[torch.Tensor, torch.Tensor], Callable[[], torch.Tensor]]] = {
    "tiled": prepare_tiled,
    "tma_persistent": prepare_tma_persistent,
}


def tma_missing(device: torch.device) -> str | None:
    """None when the persistent TMA variant can run on device, else why not."""
    if device.type == "cpu":
        return "the interpreter runs the tiled variant unless asked for another"
    if rocm_build():
        return "tensor descriptors (TMA) are NVIDIA Hopper's; this is a ROCm GPU"
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
            launch = VARIANTS[name](a, b)
            launch()  # autotunes this variant for the key first
            times[name] = triton.testing.do_bench(launch, warmup=10, rep=50)
        _chosen[key] = min(times, key=times.get)
    return _chosen[key]


def _fp8_operands(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hopper's fp8 tensor cores read A row-major and B column-major (K contiguous in both); with
    another layout Triton transposes in registers and cannot pipeline the loads, so such an
    operand is copied once into that layout (in prepare_matmul: set-up, outside the timed launch)."""
    if a.is_cuda and a.dtype == FP8:  # describe() passes every dtype through here
        if a.stride(1) != 1:
            a = a.contiguous()
        if b.stride(0) != 1:
            b = b.t().contiguous().t()
    return a, b


def prepare_matmul(
    a: torch.Tensor, b: torch.Tensor, *, variant: str | None = None
) -> Callable[[], torch.Tensor]:
    """Check, pick the variant (None: the faster eligible one), allocate; returns the launch."""
    _check(a, b)
    a, b = _fp8_operands(a, b)
    name = variant or choose_variant(a, b)
    if name not in VARIANTS:
        raise ValueError(f"triton matmul: unknown variant {name!r}; variants: {', '.join(VARIANTS)}")
    return VARIANTS[name](a, b)


def describe(a: torch.Tensor, b: torch.Tensor) -> dict:
    facts = {"triton_variant": choose_variant(*_fp8_operands(a, b))}
    if a.dtype == FP8 and a.is_cuda and (a.stride(1) != 1 or b.stride(0) != 1):
        facts["fp8_relayout"] = "operands copied to A row-major, B column-major once, before the timed launch"
    return facts


@register(
    "matmul",
    "triton",
    devices=("cuda", "cpu"),
    dtypes=DTYPES,
    probe=triton_missing_on,
    priority=20,
    interpreted=lambda device_type: device_type == "cpu",
    math_dtypes={"fp32": "tf32"},
    describe=describe,
    prepare=prepare_matmul,
    description="Triton GEMM (grouped tiles; persistent TMA variant on Hopper), fp32 accumulation",
)
def matmul_triton(a: torch.Tensor, b: torch.Tensor, *, variant: str | None = None) -> torch.Tensor:
    """C = A @ B with our Triton kernels; variant None picks the faster eligible one."""
    return prepare_matmul(a, b, variant=variant)()
