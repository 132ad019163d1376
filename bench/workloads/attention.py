"""OpSpec of attention forward: q (B, Hq, Sq, D), k/v (B, Hkv, Sk, D), causal or not."""

from __future__ import annotations

import math
import re

import torch

from zhisuan.bench.core import flops
from zhisuan.bench.core.errors import UsageError
from zhisuan.bench.workloads.base import Inputs, OpSpec, generator, negate_, random_tensor, shape_text

# Per (batch, head) the fp64 reference holds one Sq×Sk score matrix: bounded memory at any shape.


def reference_attention(q, k, v, causal: bool, scale: float) -> torch.Tensor:
    """Attention in float64, head by head; rows that see no key are 0 (zhisuan.kernels.attention's rule)."""
    q, k, v = (t.to(torch.float64) for t in (q, k, v))
    batch, heads, seq_q, _ = q.shape
    group = heads // k.shape[1]
    seq_k = k.shape[2]
    out = torch.zeros_like(q)
    visible = None
    if causal:
        rows = torch.arange(seq_q, device=q.device)[:, None]
        visible = torch.arange(seq_k, device=q.device)[None, :] <= rows + (seq_k - seq_q)
    for b in range(batch):
        for h in range(heads):
            scores = (q[b, h] @ k[b, h // group].T) * scale
            if visible is not None:
                scores = scores.masked_fill(~visible, float("-inf"))
            probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # all-masked rows: 0
            out[b, h] = probs @ v[b, h // group]
    return out


class AttentionSpec(OpSpec):
    name = "attention"
    flippable = True
    shape_help = (
        "BxHxSxD (batch, heads, seq, head_dim) or BxHqxHkvxSqxSkxD (grouped heads, seq_q != seq_k), "
        "e.g. 1x8x1024x64; causal is chosen with --causal"
    )

    def parse_shape(self, text: str, causal: tuple[bool, ...] = (False, True)) -> list[dict]:
        parts = re.split(r"[x×,]", text.strip().lower())
        if not all(p.isdigit() for p in parts) or len(parts) not in (4, 6):
            raise UsageError(f"attention shape {text!r}: expected {self.shape_help}")
        nums = list(map(int, parts))
        if len(nums) == 4:
            b, h, s, d = nums
            nums = [b, h, h, s, s, d]
        shapes = [self.shape(*nums, causal=c) for c in causal]
        for shape in shapes:
            self.check_shape(shape)
        return shapes

    def check_shape(self, shape: dict) -> None:
        super().check_shape(shape)
        if shape["heads"] % shape["heads_kv"]:
            raise UsageError(
                f"attention shape {shape_text(shape)}: heads ({shape['heads']}) must be a multiple of the "
                f"kv heads ({shape['heads_kv']}): each kv head serves a whole group of query heads"
            )

    @staticmethod
    def shape(batch, heads, heads_kv, seq_q, seq_k, head_dim, causal) -> dict:
        return {
            "batch": batch,
            "heads": heads,
            "heads_kv": heads_kv,
            "seq_q": seq_q,
            "seq_k": seq_k,
            "head_dim": head_dim,
            "causal": bool(causal),
        }

    def make_inputs(self, shape: dict, dtype: torch.dtype, device: str, seed: int) -> Inputs:
        gen = generator(device, seed)
        b, hq, hkv = shape["batch"], shape["heads"], shape["heads_kv"]
        sq, sk, d = shape["seq_q"], shape["seq_k"], shape["head_dim"]
        q = random_tensor((b, hq, sq, d), dtype, device, gen)
        k = random_tensor((b, hkv, sk, d), dtype, device, gen)
        v = random_tensor((b, hkv, sk, d), dtype, device, gen)
        return Inputs((q, k, v), {"causal": shape["causal"], "scale": 1.0 / math.sqrt(d)})

    def reference(self, inputs: Inputs) -> torch.Tensor:
        return reference_attention(*inputs.args, **inputs.kwargs)

    def flip(self, inputs: Inputs) -> None:
        negate_(inputs.args[2])  # softmax(q k^T) (-v) = -(softmax(q k^T) v), exactly

    def memory_bytes(self, shape: dict, itemsize: int, copies: int = 1) -> int:
        s = shape
        q_o = 2 * s["batch"] * s["heads"] * s["seq_q"] * s["head_dim"]  # q and the output
        k_v = 2 * s["batch"] * s["heads_kv"] * s["seq_k"] * s["head_dim"]
        scores = 3 * s["seq_q"] * s["seq_k"]  # the reference's scores, mask and probabilities of one head
        return (q_o + k_v) * (copies * itemsize + 8) + scores * 8

    def flops(self, shape: dict) -> float:
        s = shape
        return flops.attention_flops(
            s["batch"], s["heads"], s["seq_q"], s["seq_k"], s["head_dim"], s["causal"]
        )

    def bytes(self, shape: dict, itemsize: int) -> float:
        s = shape
        return flops.attention_bytes(
            s["batch"], s["heads"], s["heads_kv"], s["seq_q"], s["seq_k"], s["head_dim"], itemsize
        )
