"""triton backend of attention: flash attention forward and backward (kernels/attention/triton_kernels.py).

Purpose: our FlashAttention-2 in Triton, measured against torch's SDPA kernels (flash, efficient,
cuDNN). Forward saves the log-sum-exp; backward recomputes the probabilities from it, with dk/dv
and dq in separate kernels (no atomics; grouped-query dk/dv summed over the query heads of a group
inside the kernel). `o.backward(g)` works: the backend is a torch.autograd.Function.

Supports: causal (bottom-right aligned) and not; head_dim up to 256 (padded to the next power of
two, at least 16, with masked loads); grouped-query attention; any sequence lengths; any strides.
dtypes: fp16 and bf16 on CUDA (sm_80+). Under the interpreter (TRITON_INTERPRET=1, CPU tensors)
fp32 is accepted too, so tests can compare tightly (zhisuan.kernels.triton_loader).

The forward's set-up (checks, o and lse allocated) and launch are apart: prepare_attention returns
the launch, which is what the harness times (Backend.prepare).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch

from zhisuan.kernels.devices import triton_missing_on
from zhisuan.kernels.registry import register
from zhisuan.kernels.triton_loader import cdiv, kernels_for, on_device, shared_memory_limit, target_for

KERNELS = "zhisuan.kernels.attention.triton_kernels"
DTYPES = [torch.float16, torch.bfloat16, torch.float32]
HEAD_DIM_MAX = 256
LOG2E = math.log2(math.e)


def block_size_d(head_dim: int) -> int:
    """head_dim padded to a power of two, at least 16 (tl.dot's smallest K)."""
    return max(16, 1 << (head_dim - 1).bit_length())


# ---- autotuning configs, one function per target ------------------------------------------------
# Each gives, per kernel ('fwd', 'dkdv', 'dq'), (BLOCK_SIZE_M, BLOCK_SIZE_N, num_stages, num_warps).
# fwd and dq walk keys for a block of queries; dkdv walks queries for a block of keys, so it
# prefers the long side on BLOCK_SIZE_N. 'preprocess' is the delta kernel's BLOCK_SIZE_M (untuned).


def interpreter_configs() -> dict:
    """One small tile; 32 leaves test sequences (17, 129) with full blocks and tails."""
    return {"fwd": [(32, 32, 1, 4)], "dkdv": [(32, 32, 1, 4)], "dq": [(32, 32, 1, 4)], "preprocess": 32}


def hopper_configs() -> dict:
    return {
        "fwd": [(128, 128, 3, 8), (128, 64, 3, 8), (128, 64, 4, 4), (64, 64, 4, 4), (64, 32, 3, 4)],
        "dkdv": [(64, 128, 3, 8), (32, 128, 4, 4), (64, 64, 3, 4), (32, 64, 3, 4)],
        "dq": [(128, 64, 3, 8), (128, 32, 4, 4), (64, 64, 3, 4), (64, 32, 3, 4)],
        "preprocess": 64,
    }


def ampere_configs() -> dict:
    return {
        "fwd": [(128, 64, 3, 4), (128, 32, 3, 4), (64, 64, 4, 4), (128, 128, 2, 8), (64, 32, 3, 4)],
        "dkdv": [(64, 128, 2, 8), (32, 128, 3, 4), (64, 64, 3, 4), (32, 64, 3, 4)],
        "dq": [(128, 64, 2, 8), (128, 32, 3, 4), (64, 64, 3, 4), (64, 32, 3, 4)],
        "preprocess": 64,
    }


CONFIGS: dict[str, Callable[[], dict]] = {
    "interpreter": interpreter_configs,
    "hopper": hopper_configs,
    "ampere": ampere_configs,
}


def configs(target: str, kernel: str) -> list:
    """triton.Configs of one kernel ('fwd', 'dkdv', 'dq') for a target ('interpreter', 'hopper', 'ampere')."""
    import triton

    return [
        triton.Config({"BLOCK_SIZE_M": bm, "BLOCK_SIZE_N": bn}, num_stages=stages, num_warps=warps)
        for bm, bn, stages, warps in CONFIGS[target]()[kernel]
    ]


def _shared_bytes(kernel: str, cfg, head_block: int, itemsize: int) -> int:
    """Shared memory a config needs, roughly: the streamed tiles per stage plus the resident ones."""
    bm, bn = cfg.kwargs["BLOCK_SIZE_M"], cfg.kwargs["BLOCK_SIZE_N"]
    streamed, resident = {"fwd": (bn, bm), "dq": (bn, 2 * bm), "dkdv": (bm, 2 * bn)}[kernel]
    return (cfg.num_stages * 2 * streamed + resident) * head_block * itemsize


def _prune_for(kernel: str, limit: int | None) -> Callable:
    def prune(configs, named_args, **kwargs):
        if limit is None:
            return configs
        itemsize = named_args["q_ptr"].element_size()

        def need(c):
            return _shared_bytes(kernel, c, kwargs["BLOCK_SIZE_D"], itemsize)

        # Nothing fits (head_dim 256 with many stages): keep the smallest config and let Triton say.
        return [c for c in configs if need(c) <= limit] or [min(configs, key=need)]

    return prune


@functools.cache
def autotuned(kernel: str, device: torch.device):
    """The @triton.jit kernel ('fwd', 'dkdv', 'dq') wrapped in @triton.autotune for device's target."""
    import triton

    module = kernels_for(KERNELS, device)
    fn = {
        "fwd": module.attn_fwd_kernel,
        "dkdv": module.attn_bwd_dkdv_kernel,
        "dq": module.attn_bwd_dq_kernel,
    }[kernel]
    return triton.autotune(
        configs=configs(target_for(device), kernel),
        key=["SEQ_Q", "SEQ_K", "HEAD_DIM", "GROUP_SIZE", "CAUSAL"],
        prune_configs_by={"early_config_prune": _prune_for(kernel, shared_memory_limit(device))},
    )(fn)


# ---- host wrappers: check -> allocate -> launch -------------------------------------------------


def _check(q: torch.Tensor, k: torch.Tensor) -> None:
    if q.dtype not in DTYPES:
        raise TypeError(
            f"triton attention: dtype {q.dtype} not supported (fp16, bf16; fp32 under the interpreter)"
        )
    if q.is_cuda and q.dtype == torch.float32:
        raise TypeError(
            "triton attention: fp32 runs only under the interpreter (TRITON_INTERPRET=1, CPU); use fp16 or bf16 on CUDA"
        )
    if q.shape[3] > HEAD_DIM_MAX:
        raise ValueError(f"triton attention: head_dim {q.shape[3]} > {HEAD_DIM_MAX} (q {tuple(q.shape)})")


def prepare_forward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool, scale: float
) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
    """The forward's launch, returning (o, lse): o like q; lse (batch, heads_q, seq_q) fp32 in
    natural log, -inf for rows that see no key. Checks and allocation happen here, once."""
    _check(q, k)
    batch, heads_q, seq_q, head_dim = q.shape
    heads_kv, seq_k = k.shape[1], k.shape[2]
    o = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    lse = torch.empty((batch, heads_q, seq_q), dtype=torch.float32, device=q.device)
    kernel = autotuned("fwd", q.device)
    args = (
        q,
        k,
        v,
        o,
        lse,
        *q.stride(),
        *k.stride(),
        *v.stride(),
        *o.stride(),
        heads_q,
        seq_q,
        seq_k,
        scale * LOG2E,
    )
    constants = {
        "GROUP_SIZE": heads_q // heads_kv,
        "HEAD_DIM": head_dim,
        "BLOCK_SIZE_D": block_size_d(head_dim),
        "CAUSAL": bool(causal),
    }

    def grid(meta):
        return (cdiv(seq_q, meta["BLOCK_SIZE_M"]), batch * heads_q)

    def launch() -> tuple[torch.Tensor, torch.Tensor]:
        with on_device(q):
            kernel[grid](*args, **constants)
        return o, lse

    return launch


def attention_forward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(o, lse): see prepare_forward."""
    return prepare_forward(q, k, v, causal=causal, scale=scale)()


def attention_backward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    o: torch.Tensor,
    lse: torch.Tensor,
    do: torch.Tensor,
    *,
    causal: bool,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dq, dk, dv) for the upstream gradient do, from the forward's o and lse."""
    _check(q, k)
    batch, heads_q, seq_q, head_dim = q.shape
    heads_kv, seq_k = k.shape[1], k.shape[2]
    do = do.to(q.dtype)
    module = kernels_for(KERNELS, q.device)
    head_block = block_size_d(head_dim)
    common = {"GROUP_SIZE": heads_q // heads_kv, "HEAD_DIM": head_dim, "BLOCK_SIZE_D": head_block}

    delta = torch.empty_like(lse)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    pre_block = CONFIGS[target_for(q.device)]()["preprocess"]

    def grid_q(meta):
        return (cdiv(seq_q, meta["BLOCK_SIZE_M"]), batch * heads_q)

    def grid_k(meta):
        return (cdiv(seq_k, meta["BLOCK_SIZE_N"]), batch * heads_kv)

    with on_device(q):
        module.attn_bwd_preprocess_kernel[(cdiv(seq_q, pre_block), batch * heads_q)](
            o, do, delta, *o.stride(), *do.stride(), heads_q, seq_q,
            HEAD_DIM=head_dim, BLOCK_SIZE_D=head_block, BLOCK_SIZE_M=pre_block,
        )  # fmt: skip
        autotuned("dkdv", q.device)[grid_k](
            q, k, v, do, lse, delta, dk, dv,
            *q.stride(), *k.stride(), *v.stride(), *do.stride(), *dk.stride(), *dv.stride(),
            heads_q, heads_kv, seq_q, seq_k, scale, scale * LOG2E,
            **common, CAUSAL=bool(causal),
        )  # fmt: skip
        autotuned("dq", q.device)[grid_q](
            q, k, v, do, lse, delta, dq,
            *q.stride(), *k.stride(), *v.stride(), *do.stride(), *dq.stride(),
            heads_q, seq_q, seq_k, scale, scale * LOG2E,
            **common, CAUSAL=bool(causal),
        )  # fmt: skip
    return dq, dk, dv


class FlashAttention(torch.autograd.Function):
    """o = attention(q, k, v); backward gives dq, dk, dv through our Triton kernels."""

    @staticmethod
    def forward(ctx, q, k, v, causal: bool, scale: float):
        o, lse = attention_forward(q, k, v, causal=causal, scale=scale)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.causal, ctx.scale = causal, scale
        return o

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, do):
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = attention_backward(q, k, v, o, lse, do, causal=ctx.causal, scale=ctx.scale)
        return dq, dk, dv, None, None


def prepare_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool, scale: float
) -> Callable[[], torch.Tensor]:
    """The forward's launch returning o (no autograd: what the harness times for 'attention')."""
    launch = prepare_forward(q, k, v, causal=causal, scale=scale)
    return lambda: launch()[0]


@register(
    "attention",
    "triton",
    devices=("cuda", "cpu"),
    dtypes=DTYPES,
    probe=triton_missing_on,
    priority=20,
    interpreted=lambda device_type: device_type == "cpu",
    differentiable=True,
    prepare=prepare_attention,
    description="Triton flash attention (FlashAttention-2 forward and backward, GQA, causal)",
)
def attention_triton(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool, scale: float
) -> torch.Tensor:
    """Flash attention through our Triton kernels; differentiable (o.backward(g) gives dq, dk, dv)."""
    return FlashAttention.apply(q, k, v, causal, scale)
