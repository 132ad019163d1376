"""Triton matmul kernels (the @triton.jit code); the host side is kernels/matmul/triton.py.

Loaded by zhisuan.kernels.triton_loader once per mode (compiled for CUDA tensors, interpreted for
CPU tensors); written for the GPU only, the interpreter's gaps are filled beside the loader.

Two variants of C = A @ B with fp32 accumulation, output in C's dtype:
- matmul_kernel: one program per C tile, pointer arithmetic with strides (any layout), masks for any
  M, N, K. Purpose: the portable kernel (Ampere and later, the interpreter).
- matmul_kernel_tma_persistent: one program per SM looping over C tiles; tiles move through the
  tensor-memory copy engine (host-built tensor descriptors). Purpose: Hopper. When it wins: large
  products, where the copy engine frees registers and the persistent grid hides the tile tails.

fp32 inputs multiply as tf32 on the tensor cores (input_precision is ignored for 16- and 8-bit
inputs). MAX_NUM_IMPRECISE_ACC: how many products fp8 tensor cores may sum in their own, narrower
accumulator before the partial sum is added to the fp32 accumulator (None: Triton's default for
the target); the host chooses it, see kernels/matmul/triton.py.
"""

import triton
import triton.language as tl


@triton.jit
def grouped_tile(tile_id, num_pid_m, num_pid_n, GROUP_SIZE_M: tl.constexpr):
    """(pid_m, pid_n) of a tile in grouped order: GROUP_SIZE_M rows of tiles are walked column by
    column, so consecutive programs share A rows and B columns in L2."""
    num_pid_in_group = GROUP_SIZE_M * num_pid_n
    group_id = tile_id // num_pid_in_group
    first_pid_m = group_id * GROUP_SIZE_M
    group_size_m = tl.minimum(num_pid_m - first_pid_m, GROUP_SIZE_M)
    pid_m = first_pid_m + ((tile_id % num_pid_in_group) % group_size_m)
    pid_n = (tile_id % num_pid_in_group) // group_size_m
    return pid_m, pid_n


@triton.jit
def matmul_kernel(
    a_ptr,
    b_ptr,
    c_ptr,
    M,
    N,
    K,
    stride_am,
    stride_ak,
    stride_bk,
    stride_bn,
    stride_cm,
    stride_cn,
    BLOCK_SIZE_M: tl.constexpr,
    BLOCK_SIZE_N: tl.constexpr,
    BLOCK_SIZE_K: tl.constexpr,
    GROUP_SIZE_M: tl.constexpr,
    MAX_NUM_IMPRECISE_ACC: tl.constexpr,
):
    pid = tl.program_id(axis=0)
    num_pid_m = tl.cdiv(M, BLOCK_SIZE_M)
    num_pid_n = tl.cdiv(N, BLOCK_SIZE_N)
    pid_m, pid_n = grouped_tile(pid, num_pid_m, num_pid_n, GROUP_SIZE_M)

    # Rows/columns past M/N wrap around (modulo) instead of being masked: they load valid memory,
    # their results are never stored, and the loads stay unmasked along M and N.
    offs_am = (pid_m * BLOCK_SIZE_M + tl.arange(0, BLOCK_SIZE_M)) % M
    offs_bn = (pid_n * BLOCK_SIZE_N + tl.arange(0, BLOCK_SIZE_N)) % N
    offs_k = tl.arange(0, BLOCK_SIZE_K)
    a_ptrs = a_ptr + offs_am[:, None] * stride_am + offs_k[None, :] * stride_ak
    b_ptrs = b_ptr + offs_k[:, None] * stride_bk + offs_bn[None, :] * stride_bn

    accumulator = tl.zeros((BLOCK_SIZE_M, BLOCK_SIZE_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_SIZE_K)):
        k_remaining = K - k * BLOCK_SIZE_K
        a = tl.load(a_ptrs, mask=offs_k[None, :] < k_remaining, other=0.0)
        b = tl.load(b_ptrs, mask=offs_k[:, None] < k_remaining, other=0.0)
        accumulator = tl.dot(
            a, b, accumulator, input_precision="tf32", max_num_imprecise_acc=MAX_NUM_IMPRECISE_ACC
        )
        a_ptrs += BLOCK_SIZE_K * stride_ak
        b_ptrs += BLOCK_SIZE_K * stride_bk
    c = accumulator.to(c_ptr.dtype.element_ty)

    offs_cm = pid_m * BLOCK_SIZE_M + tl.arange(0, BLOCK_SIZE_M)
    offs_cn = pid_n * BLOCK_SIZE_N + tl.arange(0, BLOCK_SIZE_N)
    c_ptrs = c_ptr + offs_cm[:, None] * stride_cm + offs_cn[None, :] * stride_cn
    tl.store(c_ptrs, c, mask=(offs_cm[:, None] < M) & (offs_cn[None, :] < N))


@triton.jit
def matmul_kernel_tma_persistent(
    a_desc,
    b_desc,
    c_desc,
    M,
    N,
    K,
    BLOCK_SIZE_M: tl.constexpr,
    BLOCK_SIZE_N: tl.constexpr,
    BLOCK_SIZE_K: tl.constexpr,
    GROUP_SIZE_M: tl.constexpr,
    NUM_SMS: tl.constexpr,
    A_TRANSPOSED: tl.constexpr,
    B_TRANSPOSED: tl.constexpr,
    MAX_NUM_IMPRECISE_ACC: tl.constexpr,
):
    """a_desc covers A as stored: (M, K) rows, or (K, M) when A_TRANSPOSED (A is a column-major
    view); likewise b_desc covers (K, N), or (N, K) when B_TRANSPOSED. The copy engine zero-fills
    reads past the edges and clips writes, so no masks are needed."""
    start_pid = tl.program_id(axis=0)
    num_pid_m = tl.cdiv(M, BLOCK_SIZE_M)
    num_pid_n = tl.cdiv(N, BLOCK_SIZE_N)
    k_tiles = tl.cdiv(K, BLOCK_SIZE_K)
    num_tiles = num_pid_m * num_pid_n

    for tile_id in tl.range(start_pid, num_tiles, NUM_SMS):
        pid_m, pid_n = grouped_tile(tile_id, num_pid_m, num_pid_n, GROUP_SIZE_M)
        offs_am = pid_m * BLOCK_SIZE_M
        offs_bn = pid_n * BLOCK_SIZE_N
        accumulator = tl.zeros((BLOCK_SIZE_M, BLOCK_SIZE_N), dtype=tl.float32)
        for ki in range(k_tiles):
            offs_k = ki * BLOCK_SIZE_K
            if A_TRANSPOSED:  # noqa: SIM108  (compile-time branches, kept as statements)
                a = tl.trans(a_desc.load([offs_k, offs_am]))
            else:
                a = a_desc.load([offs_am, offs_k])
            if B_TRANSPOSED:  # noqa: SIM108
                b = tl.trans(b_desc.load([offs_bn, offs_k]))
            else:
                b = b_desc.load([offs_k, offs_bn])
            accumulator = tl.dot(
                a, b, accumulator, input_precision="tf32", max_num_imprecise_acc=MAX_NUM_IMPRECISE_ACC
            )
        c_desc.store([offs_am, offs_bn], accumulator.to(c_desc.dtype))
