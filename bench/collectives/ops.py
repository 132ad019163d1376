"""The collectives, as a table in the manner of nccl-tests: buffers, size and bus factor of each.

Conventions (nccl-tests'):
- `count` is the element count of the larger per-rank buffer: the receive buffer of all_gather, the
  send buffer of reduce_scatter, the one buffer of the others. The reported size is
  bytes(count) = count * itemsize, so a 1 MiB all_gather over 4 ranks moves 256 KiB per rank in.
  Collectives that split the buffer among the ranks round the count down to a multiple of n.
- algbw = size / time: what the caller sees.
- busbw = algbw * bus_factor(n): the bandwidth each rank's link must carry for the algorithm that is
  optimal in bytes on the wire, so it can be compared with the hardware's link bandwidth at any n:
    all_reduce       2(n-1)/n  every rank must send (and receive) 2(n-1)/n of the buffer: a
                               reduce-scatter ((n-1)/n) and an all-gather ((n-1)/n), e.g. a ring;
    all_gather       (n-1)/n   each rank receives the n-1 slices it does not hold;
    reduce_scatter   (n-1)/n   each rank sends the n-1 slices it does not keep;
    all_to_all       (n-1)/n   each rank keeps 1/n of its buffer and exchanges the rest;
    broadcast        1         the root's buffer crosses a link once (a pipelined chain);
    reduce           1         likewise towards the root;
    sendrecv         1         each rank sends its buffer to the next and receives from the previous.
  With n = 1 the factors that vanish give busbw 0, as in nccl-tests.

Each collective also knows how to run itself over torch.distributed (`make_call`): in place or out of
place. torch.distributed's all_reduce, reduce and broadcast exist only in place, so their out-of-place
form copies the send buffer into the receive buffer and then runs in place (the copy is timed: it is
what a caller without an out-of-place API pays). all_to_all and sendrecv have no in-place form.
Reductions with op avg that torch.distributed lacks on some backends (gloo, integer types) run as
sum and then a division of the result; all_reduce runs the backend that zhisuan.kernels.all_reduce would
(--impl), checked and chosen once per case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist

REDUCE_OPS = ("sum", "max", "min", "avg")
_TORCH_OPS = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}


@dataclass(frozen=True)
class Collective:
    name: str
    summary: str
    bus_factor: Callable[[int], float]
    split: bool = False  # the buffer is divided among the ranks: count is a multiple of n
    reduces: bool = False  # takes a reduction op
    rooted: bool = False  # has a root rank
    in_place: bool = True  # has an in-place form
    min_ranks: int = 1

    def count_for(self, size_bytes: int, itemsize: int, n: int) -> int:
        """Element count for a message of size_bytes (rounded down, as nccl-tests does)."""
        count = size_bytes // itemsize
        return count - count % n if self.split else count

    def bytes(self, count: int, itemsize: int) -> int:
        """The size that algbw divides by: the larger per-rank buffer (see the module docstring)."""
        return count * itemsize

    def buffer_counts(self, count: int, n: int) -> tuple[int, int]:
        """(send, receive) element counts per rank."""
        if self.name == "all_gather":
            return count // n, count
        if self.name == "reduce_scatter":
            return count, count // n
        return count, count


COLLECTIVES: dict[str, Collective] = {
    c.name: c
    for c in (
        Collective(
            "all_reduce", "every rank ends with the reduction of all", lambda n: 2 * (n - 1) / n, reduces=True
        ),
        Collective(
            "all_gather", "every rank ends with every rank's slice", lambda n: (n - 1) / n, split=True
        ),
        Collective(
            "reduce_scatter",
            "rank r ends with slice r of the reduction",
            lambda n: (n - 1) / n,
            split=True,
            reduces=True,
        ),
        Collective(
            "all_to_all",
            "rank r sends slice s of its buffer to rank s",
            lambda n: (n - 1) / n,
            split=True,
            in_place=False,
        ),
        Collective("broadcast", "every rank ends with the root's buffer", lambda n: 1.0, rooted=True),
        Collective(
            "reduce", "the root ends with the reduction of all", lambda n: 1.0, reduces=True, rooted=True
        ),
        Collective(
            "sendrecv",
            "rank r sends to r+1 and receives from r-1 (a ring of pairs)",
            lambda n: 1.0,
            in_place=False,
            min_ranks=2,
        ),
    )
}
ALIASES = {
    "send_recv": "sendrecv",
    "alltoall": "all_to_all",
    "allreduce": "all_reduce",
    "allgather": "all_gather",
}


def get(name: str) -> Collective:
    key = ALIASES.get(name, name)
    if key not in COLLECTIVES:
        raise ValueError(f"unknown collective {name!r}; collectives: {', '.join(COLLECTIVES)}")
    return COLLECTIVES[key]


@dataclass
class Buffers:
    """The send and receive tensors of one rank; in place, one is a view of the other."""

    send: torch.Tensor
    recv: torch.Tensor
    in_place: bool


def allocate(
    coll: Collective, count: int, n: int, rank: int, dtype: torch.dtype, device, in_place: bool
) -> Buffers:
    send_count, recv_count = coll.buffer_counts(count, n)
    if not in_place:
        return Buffers(
            torch.empty(send_count, dtype=dtype, device=device),
            torch.empty(recv_count, dtype=dtype, device=device),
            False,
        )
    if not coll.in_place:
        raise ValueError(f"{coll.name} has no in-place form")
    whole = torch.empty(max(send_count, recv_count), dtype=dtype, device=device)
    if coll.name == "all_gather":  # rank r's input is slice r of the output
        return Buffers(whole[rank * send_count : (rank + 1) * send_count], whole, True)
    if coll.name == "reduce_scatter":  # rank r's output is slice r of the input
        return Buffers(whole, whole[rank * recv_count : (rank + 1) * recv_count], True)
    return Buffers(whole, whole, True)


def _divide(t: torch.Tensor, n: int) -> None:
    if t.is_floating_point():
        t.div_(n)
    else:
        t.floor_divide_(n)


def make_call(
    coll: Collective,
    bufs: Buffers,
    *,
    op: str | None,
    root: int,
    group,
    impl: str = "torch",
) -> Callable[[], None]:
    """A zero-argument callable that runs the collective once on this rank's buffers."""
    send, recv = bufs.send, bufs.recv
    n, rank = dist.get_world_size(group), dist.get_rank(group)
    copy_first = not bufs.in_place
    avg = op == "avg"
    torch_op = _TORCH_OPS["sum" if avg else op] if op is not None else None
    root_global = dist.get_global_rank(group, root) if coll.rooted else None

    if coll.name == "all_reduce":
        from zhisuan.kernels.allreduce import checked_backend

        # The front door's checks and the backend choice happen once, here; the timed call is the
        # backend's own, as nccl-tests times ncclAllReduce and not its argument checks.
        backend_fn = checked_backend(recv, op, impl).fn

        def call():
            if copy_first:
                recv.copy_(send)
            backend_fn(recv, op=op, group=group)

    elif coll.name == "reduce":

        def call():
            if copy_first:
                recv.copy_(send)
            dist.reduce(recv, dst=root_global, op=torch_op, group=group)
            if avg and rank == root:
                _divide(recv, n)

    elif coll.name == "broadcast":

        def call():
            if copy_first and rank == root:
                recv.copy_(send)
            dist.broadcast(recv, src=root_global, group=group)

    elif coll.name == "all_gather":
        gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor

        def call():
            gather(recv, send, group=group)

    elif coll.name == "reduce_scatter":
        scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor

        def call():
            scatter(recv, send, op=torch_op, group=group)
            if avg:
                _divide(recv, n)

    elif coll.name == "all_to_all":

        def call():
            dist.all_to_all_single(recv, send, group=group)

    elif coll.name == "sendrecv":
        peer_next = dist.get_global_rank(group, (rank + 1) % n)
        peer_prev = dist.get_global_rank(group, (rank - 1) % n)

        def call():
            ops = [
                dist.P2POp(dist.isend, send, peer_next, group),
                dist.P2POp(dist.irecv, recv, peer_prev, group),
            ]
            for request in dist.batch_isend_irecv(ops):
                request.wait()

    else:  # the table and this function list the same collectives
        raise ValueError(f"no torch.distributed call for collective {coll.name!r}")
    return call
