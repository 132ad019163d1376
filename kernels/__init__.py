"""zhisuan kernels: matmul, attention and all-reduce behind one small API.

from zhisuan import kernels
c = zhisuan.kernels.matmul(a, b)                       # best available backend for a's device
c = zhisuan.kernels.matmul(a, b, backend="cpp")
o = zhisuan.kernels.attention(q, k, v, causal=True)    # q: (batch, heads, seq, head_dim)
zhisuan.kernels.all_reduce(t, op="sum", backend="shm")
zhisuan.kernels.backends("matmul")                     # {'cpp': available | why not, ...}
"""

from zhisuan.kernels.allreduce import all_reduce
from zhisuan.kernels.attention import attention
from zhisuan.kernels.matmul import matmul
from zhisuan.kernels.registry import BackendUnavailable, register


def backends(op: str, device: str | None = None) -> dict:
    """Every backend of op -> BackendStatus (str() of it: 'available' or why not)."""
    from zhisuan.kernels.registry import status

    return status(op, device)


__all__ = ["matmul", "attention", "all_reduce", "backends", "register", "BackendUnavailable"]
