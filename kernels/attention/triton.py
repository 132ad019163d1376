"""triton backend of attention: flash attention forward and backward (kernels/attention/triton_kernels.py).

Purpose: our FlashAttention-2 in Triton, measured against torch's SDPA kernels (flash, efficient,
cuDNN). Forward saves the log-sum-exp; backward recomputes the probabilities from it, with dk/dv
and dq in separate kernels (no atomics; grouped-query dk/dv summed over the query heads of a group
inside the kernel). `o.backward(g)` works: the backend is a torch.autograd.Function.

Supports: causal (bottom-right aligned) and not; head_dim up to 256 (padded to the next power of
two, at least 16, with masked loads); grouped-query attention; any sequence lengths; any strides.
dtypes: fp16 and bf16 on CUDA (sm_80+). Under the interpreter (TRITON_INTERPRET=1, CPU tensors)
fp32 is accepted too, so tests can compare tightly; there bf16 operands are widened to fp32 inside
the kernels and bf16 outputs rounded by torch (the interpreter mishandles bf16, see
kernels/matmul/triton.py), so interpreted bf16 is slightly more accurate than the GPU's.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from types import ModuleType

import torch

from zhisuan.kernels.matmul.triton import cdiv, load_kernel_module, target_for, triton_missing_on
from zhisuan.kernels.registry import register

DTYPES = [torch.float16, torch.bfloat16, torch.float32]
HEAD_DIM_MAX = 256
LOG2E = math.log2(math.e)


def kernels_for(device: torch.device) -> ModuleType:
    return load_kernel_module("zhisuan.kernels.attention.triton_kernels", device.type == "cpu")


def block_d(head_dim: int) -> int:
    """head_dim padded to a power of two, at least 16 (tl.dot's smallest K)."""
    return max(16, 1 << (head_dim - 1).bit_length())


# ---- autotuning configs per target and kernel ---------------------------------------------------
# (BLOCK_M, BLOCK_N, num_stages, num_warps). fwd and dq walk keys for a block of queries; dkdv
# walks queries for a block of keys, so it prefers the long side on BLOCK_N.

_CONFIGS = {
    "interpreter": {
        # One small tile; 32 leaves test sequences (17, 129) with full blocks and tails.
        "fwd": [(32, 32, 1, 4)],
        "dkdv": [(32, 32, 1, 4)],
        "dq": [(32, 32, 1, 4)],
    },
    "hopper": {
        "fwd": [(128, 128, 3, 8), (128, 64, 3, 8), (128, 64, 4, 4), (64, 64, 4, 4), (64, 32, 3, 4)],
        "dkdv": [(64, 128, 3, 8), (32, 128, 4, 4), (64, 64, 3, 4), (32, 64, 3, 4)],
        "dq": [(128, 64, 3, 8), (128, 32, 4, 4), (64, 64, 3, 4), (64, 32, 3, 4)],
    },
    "ampere": {
        "fwd": [(128, 64, 3, 4), (128, 32, 3, 4), (64, 64, 4, 4), (128, 128, 2, 8), (64, 32, 3, 4)],
        "dkdv": [(64, 128, 2, 8), (32, 128, 3, 4), (64, 64, 3, 4), (32, 64, 3, 4)],
        "dq": [(128, 64, 2, 8), (128, 32, 3, 4), (64, 64, 3, 4), (64, 32, 3, 4)],
    },
}


def configs(target: str, kernel: str) -> list:
    """triton.Configs of one kernel ('fwd', 'dkdv', 'dq') for a target ('interpreter', 'hopper', 'ampere')."""
    import triton

    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_stages=stages, num_warps=warps)
        for bm, bn, stages, warps in _CONFIGS[target][kernel]
    ]


def _shared_bytes(kernel: str, cfg, head_block: int, itemsize: int) -> int:
    """Shared memory a config needs, roughly: the streamed tiles per stage plus the resident ones."""
    bm, bn = cfg.kwargs["BLOCK_M"], cfg.kwargs["BLOCK_N"]
    streamed, resident = {"fwd": (bn, bm), "dq": (bn, 2 * bm), "dkdv": (bm, 2 * bn)}[kernel]
    return (cfg.num_stages * 2 * streamed + resident) * head_block * itemsize


def _prune_for(kernel: str, limit: int | None) -> Callable:
    def prune(configs, named_args, **kwargs):
        if limit is None:
            return configs
        itemsize = named_args["q_ptr"].element_size()
        kept = [c for c in configs if _shared_bytes(kernel, c, kwargs["BLOCK_D"], itemsize) <= limit]
        # Nothing fits (head_dim 256 with many stages): keep the smallest config and let Triton say.
        return kept or [min(configs, key=lambda c: _shared_bytes(kernel, c, kwargs["BLOCK_D"], itemsize))]

    return prune


@functools.cache
def autotuned(kernel: str, device: torch.device):
    """The @triton.jit kernel ('fwd', 'dkdv', 'dq') wrapped in @triton.autotune for device's target."""
    import triton

    module = kernels_for(device)
    fn = {
        "fwd": module.attn_fwd_kernel,
        "dkdv": module.attn_bwd_dkdv_kernel,
        "dq": module.attn_bwd_dq_kernel,
    }[kernel]
    limit = None
    if device.type == "cuda":
        from triton.runtime import driver

        limit = driver.active.utils.get_device_properties(device.index)["max_shared_mem"]
    return triton.autotune(
        configs=configs(target_for(device), kernel),
        key=["SEQ_Q", "SEQ_K", "HEAD_DIM", "GROUP_SIZE", "CAUSAL"],
        prune_configs_by={"early_config_prune": _prune_for(kernel, limit)},
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


def _dot_in_fp32(t: torch.Tensor) -> bool:
    return t.device.type == "cpu" and t.dtype == torch.bfloat16


def _kernel_out_dtype(t: torch.Tensor) -> torch.dtype:
    # The interpreter rounds fp32 -> bf16 by truncation: there kernels write fp32, torch rounds.
    return torch.float32 if _dot_in_fp32(t) else t.dtype


def _on_device(t: torch.Tensor):
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


def attention_forward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(o, lse): o like q; lse (batch, heads_q, seq_q) fp32 in natural log, -inf for rows that see no key."""
    _check(q, k)
    batch, heads_q, seq_q, head_dim = q.shape
    heads_kv, seq_k = k.shape[1], k.shape[2]
    o = torch.empty(q.shape, dtype=_kernel_out_dtype(q), device=q.device)
    lse = torch.empty((batch, heads_q, seq_q), dtype=torch.float32, device=q.device)

    def grid(meta):
        return (cdiv(seq_q, meta["BLOCK_M"]), batch * heads_q)

    with _on_device(q):
        autotuned("fwd", q.device)[grid](
            q, k, v, o, lse,
            *q.stride(), *k.stride(), *v.stride(), *o.stride(),
            heads_q, seq_q, seq_k, scale * LOG2E,
            GROUP_SIZE=heads_q // heads_kv, HEAD_DIM=head_dim, BLOCK_D=block_d(head_dim),
            CAUSAL=bool(causal), DOT_IN_FP32=_dot_in_fp32(q),
        )  # fmt: skip
    return o.to(q.dtype), lse


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
    module = kernels_for(q.device)
    head_block = block_d(head_dim)
    common = {"GROUP_SIZE": heads_q // heads_kv, "HEAD_DIM": head_dim, "BLOCK_D": head_block}

    delta = torch.empty_like(lse)
    dq = torch.empty(q.shape, dtype=_kernel_out_dtype(q), device=q.device)
    dk = torch.empty(k.shape, dtype=_kernel_out_dtype(k), device=k.device)
    dv = torch.empty(v.shape, dtype=_kernel_out_dtype(v), device=v.device)
    pre_block = 32 if q.device.type == "cpu" else 64

    def grid_q(meta):
        return (cdiv(seq_q, meta["BLOCK_M"]), batch * heads_q)

    def grid_k(meta):
        return (cdiv(seq_k, meta["BLOCK_N"]), batch * heads_kv)

    with _on_device(q):
        module.attn_bwd_preprocess_kernel[(cdiv(seq_q, pre_block), batch * heads_q)](
            o, do, delta, *o.stride(), *do.stride(), heads_q, seq_q,
            HEAD_DIM=head_dim, BLOCK_D=head_block, BLOCK_M=pre_block,
        )  # fmt: skip
        autotuned("dkdv", q.device)[grid_k](
            q, k, v, do, lse, delta, dk, dv,
            *q.stride(), *k.stride(), *v.stride(), *do.stride(), *dk.stride(), *dv.stride(),
            heads_q, heads_kv, seq_q, seq_k, scale, scale * LOG2E,
            **common, CAUSAL=bool(causal), DOT_IN_FP32=_dot_in_fp32(q),
        )  # fmt: skip
        autotuned("dq", q.device)[grid_q](
            q, k, v, do, lse, delta, dq,
            *q.stride(), *k.stride(), *v.stride(), *do.stride(), *dq.stride(),
            heads_q, seq_q, seq_k, scale, scale * LOG2E,
            **common, CAUSAL=bool(causal), DOT_IN_FP32=_dot_in_fp32(q),
        )  # fmt: skip
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)


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


@register(
    "attention",
    "triton",
    devices=("cuda", "cpu"),
    dtypes=DTYPES,
    probe=triton_missing_on,
    priority=20,
    interpreted=lambda device_type: device_type == "cpu",
    differentiable=True,
    description="Triton flash attention (FlashAttention-2 forward and backward, GQA, causal)",
)
def attention_triton(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool, scale: float
) -> torch.Tensor:
    """Flash attention through our Triton kernels; differentiable (o.backward(g) gives dq, dk, dv)."""
    return FlashAttention.apply(q, k, v, causal, scale)
