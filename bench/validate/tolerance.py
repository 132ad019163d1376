"""Error bounds for the hardware checks: absolute, never taken from the vendor's own error.

The harness (zhisuan.bench.harness.runner) accepts a kernel whose error is at most k times torch's on the same
inputs. That cannot validate hardware: the vendor path is the thing under test, and a chip that
corrupts its results would raise the allowance with its own error. These bounds come from the
arithmetic instead (Higham & Mary's probabilistic rounding-error analysis: with probability close
to 1, an inner product of length K computed with unit roundoff u errs by at most
lambda * sqrt(K) * u * sum|a_k b_k|), plus the final rounding of the output:

  matmul     tol = u_out * max|C| + LAMBDA * sqrt(K) * u_math * max_i ||a_i||_1 * max|B|
  attention  two products, S = Q K^T * scale (length D) and O = P V (length Sk, rows of P sum to 1):
             tol = u_out * max|O| + (2 * LAMBDA * sqrt(D) * u_acc * D * max|q| max|k| * scale
                                     + LAMBDA * sqrt(Sk) * u_acc + 2 * u_io) * max|V|
             (an error e in a score changes the probabilities by a relative ~e, hence 2e * max|V|;
             2 * u_io covers P rounded to the storage dtype before P V, as flash kernels do)

u_math is the roundoff of the multiplication: fp64 2^-53, fp32 2^-24, tf32 2^-11 (inputs rounded to
10 mantissa bits); bf16/fp16/fp8 inputs are exact and products accumulate in fp32 (2^-24).
LAMBDA = 4 makes a false alarm practically impossible (probability below 2 exp(-8)) while an error
in any but the lowest bits of a result still fails. Bits that no tolerance can see are the
integrity check's business (bitwise-identical repeats).
"""

from __future__ import annotations

import math

import torch

from zhisuan.bench.core.accel import float64_device

LAMBDA = 4.0
UNIT_ROUNDOFF = {
    "fp64": 2.0**-53,
    "fp32": 2.0**-24,
    "tf32": 2.0**-11,
    "bf16": 2.0**-24,  # exact inputs, fp32 accumulation
    "fp16": 2.0**-24,
    "fp8e4m3": 2.0**-24,
}


def storage_roundoff(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps / 2


def matmul_tolerance(a: torch.Tensor, b: torch.Tensor, reference: torch.Tensor, math_dtype: str,
                     out_dtype: torch.dtype) -> float:  # fmt: skip
    k = a.shape[1]
    row_l1 = float(a.float().abs().sum(dim=1).max())
    b_max = float(b.float().abs().max())
    out_round = storage_roundoff(out_dtype) * float(reference.abs().max())
    return out_round + LAMBDA * math.sqrt(k) * UNIT_ROUNDOFF[math_dtype] * row_l1 * b_max


def attention_tolerance(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, reference: torch.Tensor,
                        scale: float) -> float:  # fmt: skip
    d, seq_k = q.shape[-1], k.shape[-2]
    u_io = storage_roundoff(q.dtype)
    u_acc = UNIT_ROUNDOFF["fp64"] if q.dtype == torch.float64 else UNIT_ROUNDOFF["fp32"]
    q_max, k_max, v_max = (float(t.float().abs().max()) for t in (q, k, v))
    score_err = LAMBDA * math.sqrt(d) * u_acc * d * q_max * k_max * scale
    product_err = LAMBDA * math.sqrt(seq_k) * u_acc + 2 * u_io
    return u_io * float(reference.abs().max()) + (2 * score_err + product_err) * v_max


def reference_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b in float64: on the inputs' device, or on the CPU where that device has no float64 matmul."""
    home = float64_device(a.device)
    return a.to(home, torch.float64) @ b.to(home, torch.float64)


def describe(kind: str) -> str:
    """The rule's text for a result's check dict."""
    return {
        "matmul": "err <= u_out*max|C| + 4*sqrt(K)*u_math*max||a_i||_1*max|B| (zhisuan.bench.validate.tolerance)",
        "attention": "err <= probabilistic bound of QK^T and PV rounding (zhisuan.bench.validate.tolerance)",
    }[kind]
