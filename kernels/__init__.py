"""zhisuan kernels: matmul, attention and all-reduce behind one small API.

import kernels
c = kernels.matmul(a, b)                       # best available backend for a's device
c = kernels.matmul(a, b, backend="cpp")
o = kernels.attention(q, k, v, causal=True)    # q: (batch, heads, seq, head_dim)
kernels.all_reduce(t, op="sum", backend="shm")
kernels.backends("matmul")                     # {'cpp': available | why not, ...}
"""

from kernels.allreduce import all_reduce
from kernels.attention import attention
from kernels.matmul import matmul
from kernels.registry import BackendUnavailable, register


def backends(op: str, device: str | None = None) -> dict:
    """Every backend of op -> BackendStatus (str() of it: 'available' or why not)."""
    from kernels.registry import status

    return status(op, device)


__all__ = ["matmul", "attention", "all_reduce", "backends", "register", "BackendUnavailable"]
