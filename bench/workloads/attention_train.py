"""OpSpec of attention forward + backward (a training step's attention), for autograd backends.

One call computes o = attention(q, k, v) and the gradients (dq, dk, dv) for a fixed random
upstream gradient do, through the backend's autograd. The check compares o, dq, dk and dv with a
float64 reference; FLOPs are 3.5× the forward's (backward 2.5×, FlashAttention's convention).
"""

from __future__ import annotations

import torch

from zhisuan.bench.core import flops
from zhisuan.bench.workloads.attention import AttentionSpec, reference_attention
from zhisuan.bench.workloads.base import Inputs, generator, negate_, random_tensor


class AttentionTrainSpec(AttentionSpec):
    name = "attention-train"

    @property
    def registry_op(self) -> str:
        return "attention"

    def accepts(self, backend) -> str | None:
        return None if backend.differentiable else f"{backend.name} attention has no backward pass"

    def make_inputs(self, shape: dict, dtype: torch.dtype, device: str, seed: int) -> Inputs:
        inputs = super().make_inputs(shape, dtype, device, seed)
        q, k, v = (t.requires_grad_(True) for t in inputs.args)
        grad_out = random_tensor(tuple(q.shape), dtype, device, generator(device, seed + 1))
        return Inputs((q, k, v), inputs.kwargs, {"grad_out": grad_out})

    def bind(self, backend, inputs: Inputs):
        (q, k, v), kwargs = inputs.args, inputs.kwargs
        grad_out = inputs.private["grad_out"]

        def step():
            o = backend.fn(q, k, v, **kwargs)
            return (o.detach(), *torch.autograd.grad(o, (q, k, v), grad_out))

        return step

    def reference(self, inputs: Inputs):
        """(o, dq, dk, dv) in float64, one (batch, kv head group) at a time to bound memory."""
        (q, k, v), kwargs = inputs.args, inputs.kwargs
        grad_out = inputs.private["grad_out"].to(torch.float64)
        q64, k64, v64 = (t.detach().to(torch.float64) for t in (q, k, v))
        outs = [torch.zeros_like(t) for t in (q64, q64, k64, v64)]
        group = q.shape[1] // k.shape[1]
        for b in range(q.shape[0]):
            for h in range(k.shape[1]):
                heads = slice(h * group, (h + 1) * group)
                qs = q64[b : b + 1, heads].clone().requires_grad_(True)
                ks = k64[b : b + 1, h : h + 1].clone().requires_grad_(True)
                vs = v64[b : b + 1, h : h + 1].clone().requires_grad_(True)
                o = reference_attention(qs, ks, vs, **kwargs)
                dq, dk, dv = torch.autograd.grad(o, (qs, ks, vs), grad_out[b : b + 1, heads])
                outs[0][b, heads], outs[1][b, heads] = o[0].detach(), dq[0]
                outs[2][b, h], outs[3][b, h] = dk[0, 0], dv[0, 0]
        return tuple(outs)

    def flip(self, inputs: Inputs) -> None:
        negate_(inputs.private["grad_out"])  # the gradients are linear in it: dq, dk, dv negate, o not

    def flipped(self, reference):
        o, dq, dk, dv = reference
        return (o, -dq, -dk, -dv)

    def memory_bytes(self, shape: dict, itemsize: int, copies: int = 1) -> int:
        """Forward and backward: the gradients, upstream gradient and autograd's saved tensors
        double the forward's inputs and outputs, in the dtype and in float64."""
        return 3 * super().memory_bytes(shape, itemsize, copies)

    def flops(self, shape: dict) -> float:
        s = shape
        return flops.attention_flops(
            s["batch"], s["heads"], s["seq_q"], s["seq_k"], s["head_dim"], s["causal"], mode="fwd+bwd"
        )

    def bytes(self, shape: dict, itemsize: int) -> float:
        """Forward traffic (q, k, v, o) plus backward (do, dq, dk, dv read or written once): 2× forward."""
        return 2 * super().bytes(shape, itemsize)
