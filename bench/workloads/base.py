"""OpSpec: everything the harness needs to know about one op, so metrics are computed generically.

An OpSpec bundles the input maker (seeded, well-conditioned random data, never zeros), the FLOP
and byte counts (from zhisuan.bench.core.flops), the float64 reference and the tolerance policy:

    tolerance = max(TOLERANCE_K × error of the baseline (torch) in the same precision,
                    FLOOR_ULPS × eps(dtype, or the backend's math format: tf32) × max|reference|)

that is, our kernel may be at most k times less accurate than the vendor's on the same inputs
(FlashAttention's rule), and no check is stricter than a few units in the last place. An OpSpec may
replace the rule where it means nothing (matmul's fp8: zhisuan.bench.workloads.matmul).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from zhisuan.bench.core.errors import UsageError

TOLERANCE_K = 4.0
FLOOR_ULPS = 4.0
RULE = "err <= max(4 x baseline error, 4 ulp x max|ref|)"


@dataclass
class Inputs:
    """Positional tensors and keyword options for one call of an op's backend."""

    args: tuple
    kwargs: dict
    private: dict = field(default_factory=dict)  # the spec's own data, never passed to a backend

    def tensors(self) -> tuple:
        """Every tensor a backend receives (what it must not write into)."""
        return tuple(v for v in (*self.args, *self.kwargs.values()) if isinstance(v, torch.Tensor))


class OpSpec(ABC):
    name: str  # the benchmark's name (results' `op`)
    shape_help: str  # how a --shape is written for this op
    flippable: bool = False  # flip() negates an input so that the output negates exactly

    @property
    def registry_op(self) -> str:
        """The kernels registry op whose backends this benchmark runs (usually the same name)."""
        return self.name

    def accepts(self, backend) -> str | None:
        """None if this benchmark can run the backend, else why not (e.g. it has no backward)."""
        return None

    @abstractmethod
    def parse_shape(self, text: str) -> list[dict]:
        """Shape(s) from command-line text; raises UsageError naming the expected form."""

    def check_shape(self, shape: dict) -> None:
        """UsageError unless every size of shape is a positive integer: a zero-size problem has no
        work to time. Ops add their own rules (attention: heads a multiple of kv heads)."""
        for name, value in shape.items():
            if isinstance(value, bool) or not isinstance(value, int):
                continue
            if value < 1:
                raise UsageError(
                    f"{self.name} shape {shape_text(shape)}: {name} must be at least 1, got {value}"
                )

    @abstractmethod
    def make_inputs(self, shape: dict, dtype: torch.dtype, device: str, seed: int) -> Inputs:
        """Fresh random inputs (never zeros), reproducible from the seed."""

    @abstractmethod
    def reference(self, inputs: Inputs) -> torch.Tensor:
        """The exact answer in float64, on the inputs' device (the CPU where that device has no
        float64 matmul: zhisuan.bench.core.accel.float64_device)."""

    @abstractmethod
    def flops(self, shape: dict) -> float:
        """Floating-point operations of one call (zhisuan.bench.core.flops)."""

    @abstractmethod
    def bytes(self, shape: dict, itemsize: int) -> float:
        """Minimum bytes moved to and from memory by one call."""

    def tolerance(
        self,
        inputs: Inputs,
        reference,
        baseline_error: float | None,
        dtype: torch.dtype,
        math_dtype: str | None,
    ) -> tuple[float, str]:
        """The check's bound on these inputs and the text of its rule (kept in the result)."""
        return tolerance(baseline_error, reference, dtype, math_dtype), RULE

    def bind(self, backend, inputs: Inputs) -> Callable[[], torch.Tensor]:
        """A zero-argument callable: what the timer runs (the backend's set-up, if it has one, done here)."""
        return backend.bind(*inputs.args, **inputs.kwargs)

    @abstractmethod
    def memory_bytes(self, shape: dict, itemsize: int, copies: int = 1) -> int:
        """Bytes a case needs at its peak: the float64 reference (with its temporaries) and `copies`
        sets of inputs and output in the dtype. Estimated before anything is allocated."""

    def flip(self, inputs: Inputs) -> None:
        """Negate, in place, the input whose sign the exact output follows (outside any timed
        region), so that the reference becomes flipped(reference) exactly: IEEE arithmetic is
        symmetric under a sign change. Only for ops with flippable = True."""
        raise TypeError(f"{self.name}: no input to negate (flippable is False)")

    def flipped(self, reference):
        """The reference of the flipped inputs (flip): the reference negated."""
        if isinstance(reference, (tuple, list)):
            return type(reference)(-r for r in reference)
        return -reference


def shape_text(shape: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in shape.items())


def negate_(tensor: torch.Tensor) -> None:
    """tensor = -tensor in place, outside autograd (inputs may require grad).

    One-byte floats (fp8) have no neg kernel on CUDA ("neg_cuda" not implemented, seen on an H200):
    their sign is the top bit of the byte, so flipping that bit negates exactly.
    """
    with torch.no_grad():
        if tensor.is_floating_point() and tensor.element_size() == 1:
            tensor.view(torch.uint8).bitwise_xor_(0x80)
        else:
            tensor.neg_()


def generator(device: str, seed: int) -> torch.Generator:
    gen = torch.Generator(device=torch.device(device).type if torch.device(device).type != "cpu" else "cpu")
    gen.manual_seed(seed)
    return gen


def random_tensor(shape: tuple, dtype: torch.dtype, device: str, gen: torch.Generator, scale: float = 1.0):
    """Uniform in [-scale, scale), generated in fp32 on the device, then cast."""
    t = torch.rand(shape, generator=gen, device=device, dtype=torch.float32)
    return ((t * 2 - 1) * scale).to(dtype)


def max_abs_error(out, reference) -> float:
    """Max |out - reference|; for tuples of tensors (e.g. outputs and gradients), the max over all."""
    if isinstance(reference, (tuple, list)):
        if not isinstance(out, (tuple, list)) or len(out) != len(reference):
            raise ValueError(f"expected {len(reference)} outputs, got {type(out).__name__}")
        return max(max_abs_error(o, r) for o, r in zip(out, reference, strict=True))
    if out.shape != reference.shape:
        raise ValueError(
            f"output shape {tuple(out.shape)} differs from the reference {tuple(reference.shape)}"
        )
    if out.numel() == 0:
        return 0.0
    diff = (out.to(reference.device, torch.float64) - reference).abs()
    if torch.isnan(diff).any():
        return float("nan")
    return float(diff.max())


# Unit roundoff of math formats that are not storage dtypes: tf32 keeps 10 explicit mantissa bits.
MATH_EPS = {"tf32": 2.0**-10}


def tolerance(
    baseline_error: float | None, reference, dtype: torch.dtype, math_dtype: str | None = None
) -> float:
    """The check's bound; math_dtype names the backend's arithmetic where it is coarser than dtype
    (fp32 multiplied as tf32 on tensor cores): the floor then uses that format's epsilon."""
    eps = torch.finfo(dtype).eps if dtype.is_floating_point else 0.0
    eps = max(eps, MATH_EPS.get(math_dtype, 0.0))
    parts = reference if isinstance(reference, (tuple, list)) else (reference,)
    scale = max((float(r.abs().max()) for r in parts if r.numel()), default=0.0)
    floor = FLOOR_ULPS * eps * max(scale, 1.0)
    if baseline_error is None or baseline_error != baseline_error:  # missing or NaN
        return floor
    return max(TOLERANCE_K * baseline_error, floor)
