"""matmul: C = A @ B for 2-D A (M, K) and B (K, N), output in the input dtype."""

from __future__ import annotations

import torch

from zhisuan.kernels import checks, registry

# Importing the backend modules registers them; each imports its heavy dependencies lazily.
from zhisuan.kernels.matmul import cpp, cupy, torch_backend, triton  # noqa: F401  (registration side effect)


def check_inputs(a: torch.Tensor, b: torch.Tensor) -> None:
    checks.require_tensor("matmul", "a", a)
    checks.require_tensor("matmul", "b", b)
    checks.require_rank("matmul", "a", a, 2, "(M, K)")
    checks.require_rank("matmul", "b", b, 2, "(K, N)")
    if a.shape[1] != b.shape[0]:
        raise ValueError(
            f"matmul: inner dimensions differ: a is {tuple(a.shape)} (M, K), b is {tuple(b.shape)} (K, N)"
        )
    checks.require_same_dtype("matmul", a=a, b=b)
    checks.require_same_device("matmul", a=a, b=b)


def matmul(a: torch.Tensor, b: torch.Tensor, *, backend: str | None = None) -> torch.Tensor:
    """A @ B with the named backend, or the best one available for a's device and dtype.

    Any M, N, K (zero included) and any strides (a transposed view is fine).
    """
    check_inputs(a, b)
    chosen = registry.select("matmul", a.device.type, a.dtype, backend)
    if a.shape[0] == 0 or b.shape[1] == 0 or a.shape[1] == 0:
        # An empty product is defined without any kernel: (M, N) zeros (K == 0) or an empty matrix.
        return torch.zeros((a.shape[0], b.shape[1]), dtype=a.dtype, device=a.device)
    return chosen.fn(a, b)
