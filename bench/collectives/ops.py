"""The collectives as a table in the manner of nccl-tests: one entry holds everything about one.

An entry gives the bus factor, the per-rank buffer sizes and their in-place layout, the exact result
a rank's receive buffer must hold (from the check data of zhisuan.bench.collectives.check), and the
call over torch.distributed. Adding a collective means adding one entry to COLLECTIVES.

Conventions (nccl-tests'):
- `count` is the element count of the larger per-rank buffer: the receive buffer of all_gather, the
  send buffer of reduce_scatter, the one buffer of the others. The reported size is
  bytes(count) = count * itemsize, so a 1 MiB all_gather over 4 ranks moves 256 KiB per rank in.
  Collectives that split the buffer among the ranks round the count down to a multiple of n.
- algbw = size / time: what the caller sees.
- busbw = algbw * bus_factor(n): the bandwidth each rank's link must carry for the algorithm that is
  optimal in bytes on the wire, so it can be compared with the hardware's link bandwidth at any n
  (each entry's factor carries its derivation). With n = 1 the factors that vanish give busbw 0, as
  in nccl-tests.

Calls run in place or out of place. torch.distributed's all_reduce, reduce and broadcast exist only
in place, so their out-of-place form copies the send buffer into the receive buffer and then runs in
place (the copy is timed: it is what a caller without an out-of-place API pays). all_to_all and
sendrecv have no in-place form. Reductions with op avg that torch.distributed lacks on some backends
(gloo, integer types) run as sum and then a division of the result. all_reduce runs the backend that
zhisuan.kernels.all_reduce would (--impl), checked and chosen once per case, out of place in the
backend's own out-of-place form where it has one (shm and mpi: no copy), else as a copy first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist

from zhisuan.bench.collectives.check import Pattern, reduction
from zhisuan.bench.core.errors import UsageError

REDUCE_OPS = ("sum", "max", "min", "avg")
_TORCH_OPS = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}


@dataclass(frozen=True)
class Site:
    """One rank's part in one collective call: group size, rank, reduction, root, nccl-tests count.

    root is a rank of `group`; group None is the default group (the check needs no group at all).
    """

    n: int
    rank: int
    op: str | None = None
    root: int = 0
    count: int = 0
    group: object = None
    impl: str = "torch"  # all_reduce: the zhisuan.kernels backend

    @property
    def chunk(self) -> int:
        """Elements per rank's slice, for the collectives that split their buffer."""
        return self.count // self.n

    @property
    def torch_op(self):
        """torch.distributed's op (avg runs as sum, then a division: see _divide_if_avg)."""
        return _TORCH_OPS["sum" if self.op == "avg" else self.op] if self.op is not None else None

    def global_rank(self, group_rank: int) -> int:
        return group_rank if self.group is None else dist.get_global_rank(self.group, group_rank)


@dataclass
class Buffers:
    """The send and receive tensors of one rank; in place, one is a view of the other."""

    send: torch.Tensor
    recv: torch.Tensor
    in_place: bool


Views = Callable[[torch.Tensor, int, int, int], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Collective:
    name: str
    summary: str
    bus_factor: Callable[[int], float]
    # (count, n) -> (send, receive) element counts per rank
    buffer_counts: Callable[[int, int], tuple[int, int]]
    # (pattern, site, positions j) -> the exact int64 values of the receive buffer at j
    expected: Callable[[Pattern, Site, torch.Tensor], torch.Tensor]
    # (buffers, site) -> a zero-argument callable that runs the collective once
    call: Callable[[Buffers, Site], Callable[[], None]]
    # (one buffer, rank, send count, receive count) -> (send, receive) views of it; None: no in-place form
    in_place_views: Views | None = None
    checked_on: Callable[[Site], bool] = lambda site: True  # ranks whose receive buffer is defined
    split: bool = False  # the buffer is divided among the ranks: count is a multiple of n
    reduces: bool = False  # takes a reduction op
    rooted: bool = False  # has a root rank
    min_ranks: int = 1
    kernel_op: str | None = None  # the zhisuan.kernels op whose backends --impl picks, if any

    @property
    def in_place(self) -> bool:
        return self.in_place_views is not None

    def count_for(self, size_bytes: int, itemsize: int, n: int) -> int:
        """Element count for a message of size_bytes (rounded down, as nccl-tests does)."""
        count = size_bytes // itemsize
        return count - count % n if self.split else count

    def bytes(self, count: int, itemsize: int) -> int:
        """The size that algbw divides by: the larger per-rank buffer (see the module docstring)."""
        return count * itemsize


# ---- pieces the entries share ---------------------------------------------------------------------


def _whole(count: int, n: int) -> tuple[int, int]:
    return count, count


def _one_buffer(whole: torch.Tensor, rank: int, send_count: int, recv_count: int):
    return whole, whole


def _divide_if_avg(t: torch.Tensor, site: Site) -> None:
    if site.op != "avg":
        return
    if t.is_floating_point():
        t.div_(site.n)
    else:
        t.floor_divide_(site.n)


def _reduction_everywhere(pattern: Pattern, site: Site, j: torch.Tensor) -> torch.Tensor:
    return reduction(pattern, site.op, site.n, j)


# ---- the entries --------------------------------------------------------------------------------


def _all_reduce_call(bufs: Buffers, site: Site):
    from zhisuan.kernels.allreduce import bind, check_out, checked_backend

    # The front door's checks, the backend choice and the backend's per-call lookups happen once,
    # here; the timed call is the backend's own, as nccl-tests times ncclAllReduce on a communicator
    # made beforehand. Out of place: the backend's own form where it has one (shm, mpi: no copy),
    # else a copy first (torch).
    backend = checked_backend(bufs.send, site.op, site.impl)
    if bufs.in_place:
        return bind(backend, bufs.recv, op=site.op, group=site.group)
    check_out(bufs.send, bufs.recv)
    return bind(backend, bufs.send, op=site.op, group=site.group, out=bufs.recv)


ALL_REDUCE = Collective(
    "all_reduce",
    "every rank ends with the reduction of all",
    # 2(n-1)/n: every rank must send (and receive) 2(n-1)/n of the buffer: a reduce-scatter
    # ((n-1)/n) and an all-gather ((n-1)/n), e.g. a ring.
    bus_factor=lambda n: 2 * (n - 1) / n,
    buffer_counts=_whole,
    expected=_reduction_everywhere,
    call=_all_reduce_call,
    in_place_views=_one_buffer,
    reduces=True,
    kernel_op="all_reduce",
)


def _all_gather_call(bufs: Buffers, site: Site):
    gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    send, recv, group = bufs.send, bufs.recv, site.group

    def call():
        gather(recv, send, group=group)

    return call


ALL_GATHER = Collective(
    "all_gather",
    "every rank ends with every rank's slice",
    bus_factor=lambda n: (n - 1) / n,  # each rank receives the n-1 slices it does not hold
    buffer_counts=lambda count, n: (count // n, count),
    expected=lambda pattern, site, j: pattern.values(j // site.chunk, j % site.chunk),
    call=_all_gather_call,
    # rank r's input is slice r of the output
    in_place_views=lambda whole, rank, send, recv: (whole[rank * send : (rank + 1) * send], whole),
    split=True,
)


def _reduce_scatter_call(bufs: Buffers, site: Site):
    scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
    send, recv, group, torch_op = bufs.send, bufs.recv, site.group, site.torch_op

    def call():
        scatter(recv, send, op=torch_op, group=group)
        _divide_if_avg(recv, site)

    return call


REDUCE_SCATTER = Collective(
    "reduce_scatter",
    "rank r ends with slice r of the reduction",
    bus_factor=lambda n: (n - 1) / n,  # each rank sends the n-1 slices it does not keep
    buffer_counts=lambda count, n: (count, count // n),
    expected=lambda pattern, site, j: reduction(pattern, site.op, site.n, site.rank * site.chunk + j),
    call=_reduce_scatter_call,
    # rank r's output is slice r of the input
    in_place_views=lambda whole, rank, send, recv: (whole, whole[rank * recv : (rank + 1) * recv]),
    split=True,
    reduces=True,
)


def _all_to_all_call(bufs: Buffers, site: Site):
    send, recv, group = bufs.send, bufs.recv, site.group

    def call():
        dist.all_to_all_single(recv, send, group=group)

    return call


ALL_TO_ALL = Collective(
    "all_to_all",
    "rank r sends slice s of its buffer to rank s",
    bus_factor=lambda n: (n - 1) / n,  # each rank keeps 1/n of its buffer and exchanges the rest
    buffer_counts=_whole,
    expected=lambda pattern, site, j: pattern.values(
        j // site.chunk, site.rank * site.chunk + j % site.chunk
    ),
    call=_all_to_all_call,
    split=True,
)


def _broadcast_call(bufs: Buffers, site: Site):
    send, recv, group = bufs.send, bufs.recv, site.group
    src = site.global_rank(site.root)
    copy_first = not bufs.in_place and site.rank == site.root

    def call():
        if copy_first:
            recv.copy_(send)
        dist.broadcast(recv, src=src, group=group)

    return call


BROADCAST = Collective(
    "broadcast",
    "every rank ends with the root's buffer",
    bus_factor=lambda n: 1.0,  # the root's buffer crosses a link once (a pipelined chain)
    buffer_counts=_whole,
    expected=lambda pattern, site, j: pattern.values(site.root, j),
    call=_broadcast_call,
    in_place_views=_one_buffer,
    rooted=True,
)


def _reduce_call(bufs: Buffers, site: Site):
    send, recv, group, torch_op = bufs.send, bufs.recv, site.group, site.torch_op
    dst = site.global_rank(site.root)
    copy_first, at_root = not bufs.in_place, site.rank == site.root

    def call():
        if copy_first:
            recv.copy_(send)
        dist.reduce(recv, dst=dst, op=torch_op, group=group)
        if at_root:
            _divide_if_avg(recv, site)

    return call


REDUCE = Collective(
    "reduce",
    "the root ends with the reduction of all",
    bus_factor=lambda n: 1.0,  # like broadcast, towards the root
    buffer_counts=_whole,
    expected=_reduction_everywhere,
    call=_reduce_call,
    in_place_views=_one_buffer,
    checked_on=lambda site: site.rank == site.root,  # only the root's buffer is defined
    reduces=True,
    rooted=True,
)


def _sendrecv_call(bufs: Buffers, site: Site):
    send, recv, group, n, rank = bufs.send, bufs.recv, site.group, site.n, site.rank
    peer_next, peer_prev = site.global_rank((rank + 1) % n), site.global_rank((rank - 1) % n)

    def call():
        ops = [
            dist.P2POp(dist.isend, send, peer_next, group),
            dist.P2POp(dist.irecv, recv, peer_prev, group),
        ]
        for request in dist.batch_isend_irecv(ops):
            request.wait()

    return call


SENDRECV = Collective(
    "sendrecv",
    "rank r sends to r+1 and receives from r-1 (a ring of pairs)",
    bus_factor=lambda n: 1.0,  # each rank sends its buffer to the next and receives from the previous
    buffer_counts=_whole,
    expected=lambda pattern, site, j: pattern.values((site.rank - 1) % site.n, j),
    call=_sendrecv_call,
    min_ranks=2,
)

COLLECTIVES: dict[str, Collective] = {
    c.name: c for c in (ALL_REDUCE, ALL_GATHER, REDUCE_SCATTER, ALL_TO_ALL, BROADCAST, REDUCE, SENDRECV)
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
        raise UsageError(f"unknown collective {name!r}; collectives: {', '.join(COLLECTIVES)}")
    return COLLECTIVES[key]


def allocate(coll: Collective, site: Site, dtype: torch.dtype, device, in_place: bool) -> Buffers:
    """This rank's buffers for one call (in place: laid out as nccl-tests does, one inside the other)."""
    send_count, recv_count = coll.buffer_counts(site.count, site.n)
    if not in_place:
        return Buffers(
            torch.empty(send_count, dtype=dtype, device=device),
            torch.empty(recv_count, dtype=dtype, device=device),
            False,
        )
    if coll.in_place_views is None:
        raise ValueError(f"{coll.name} has no in-place form")
    whole = torch.empty(max(send_count, recv_count), dtype=dtype, device=device)
    send, recv = coll.in_place_views(whole, site.rank, send_count, recv_count)
    return Buffers(send, recv, True)
