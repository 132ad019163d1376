"""Triton flash-attention kernels (the @triton.jit code); the host side is kernels/attention/triton.py.

Loaded by zhisuan.kernels.triton_loader once per mode (compiled for CUDA tensors, interpreted for
CPU tensors); written for the GPU only, the interpreter's gaps are filled beside the loader.

Layout: q, do, o (batch, heads_q, seq_q, head_dim); k, v (batch, heads_kv, seq_k, head_dim), any
strides; lse and delta (batch * heads_q, seq_q) contiguous fp32. Query head h reads kv head
h // GROUP_SIZE. Causal masking is bottom-right aligned: query i sees key j <= i + seq_k - seq_q.
Head dimensions that are not a power of two are padded to BLOCK_SIZE_D with masked (zero) loads.

Scores are kept in base 2: qk * scale * log2(e), so the softmax uses exp2. lse is stored in natural
log units (what a user expects); the backward converts it back. A query row that sees no key has
output 0 and lse -inf.

Each kernel walks its loop in ranges: blocks that need no mask (every key visible to every row,
no sequence tail) run without one; the rest (the causal diagonal, the tails) with masks (MASKED).
P and dS are rounded to the input dtype before their products, as FlashAttention does.
"""

import triton
import triton.language as tl

LOG2E = tl.constexpr(1.4426950408889634)
LN2 = tl.constexpr(0.6931471805599453)


@triton.jit
def _load_rows(
    ptrs,
    offs_rows,
    n_rows,
    offs_d,
    HEAD_DIM: tl.constexpr,
    BLOCK_SIZE_D: tl.constexpr,
    CHECK_ROWS: tl.constexpr,
):
    """A (rows, BLOCK_SIZE_D) tile; rows past n_rows (when CHECK_ROWS) and columns past HEAD_DIM
    read 0."""
    if CHECK_ROWS:
        if HEAD_DIM == BLOCK_SIZE_D:
            tile = tl.load(ptrs, mask=offs_rows[:, None] < n_rows, other=0.0)
        else:
            tile = tl.load(ptrs, mask=(offs_rows[:, None] < n_rows) & (offs_d[None, :] < HEAD_DIM), other=0.0)
    else:
        if HEAD_DIM == BLOCK_SIZE_D:
            tile = tl.load(ptrs)
        else:
            tile = tl.load(ptrs, mask=offs_d[None, :] < HEAD_DIM, other=0.0)
    return tile


@triton.jit
def _store_rows(ptrs, tile, offs_rows, n_rows, offs_d, HEAD_DIM: tl.constexpr, BLOCK_SIZE_D: tl.constexpr):
    if HEAD_DIM == BLOCK_SIZE_D:
        tl.store(ptrs, tile, mask=offs_rows[:, None] < n_rows)
    else:
        tl.store(ptrs, tile, mask=(offs_rows[:, None] < n_rows) & (offs_d[None, :] < HEAD_DIM))


@triton.jit
def _visible(offs_m, offs_n, SEQ_Q, SEQ_K, CAUSAL: tl.constexpr):
    """(BLOCK_SIZE_M, BLOCK_SIZE_N) mask: query row offs_m[i] may see key offs_n[j] (both inside
    the sequences)."""
    visible = (offs_m[:, None] < SEQ_Q) & (offs_n[None, :] < SEQ_K)
    if CAUSAL:
        visible = visible & (offs_n[None, :] <= offs_m[:, None] + (SEQ_K - SEQ_Q))
    return visible


@triton.jit
def _causal_key_bounds(
    start_m, SEQ_Q, SEQ_K, BLOCK_SIZE_M: tl.constexpr, BLOCK_SIZE_N: tl.constexpr, CAUSAL: tl.constexpr
):
    """For the query rows [start_m, start_m + BLOCK_SIZE_M): (full_hi, hi) such that key blocks in
    [0, full_hi) are visible to every row and need no mask, [full_hi, hi) need one, and keys from
    hi on are seen by no row. Both are multiples of BLOCK_SIZE_N except hi = SEQ_K."""
    if CAUSAL:
        first_row_limit = tl.maximum(start_m + (SEQ_K - SEQ_Q) + 1, 0)  # keys < this: seen by every row
        full_hi = tl.minimum(first_row_limit // BLOCK_SIZE_N, SEQ_K // BLOCK_SIZE_N) * BLOCK_SIZE_N
        hi = tl.minimum(tl.maximum(start_m + BLOCK_SIZE_M + (SEQ_K - SEQ_Q), 0), SEQ_K)
    else:
        full_hi = (SEQ_K // BLOCK_SIZE_N) * BLOCK_SIZE_N
        hi = SEQ_K
    return full_hi, hi


# ---- forward -------------------------------------------------------------------------------------


@triton.jit
def _attn_fwd_range(
    acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
    offs_m, offs_d, lo, hi, SEQ_Q, SEQ_K, qk_scale,
    HEAD_DIM: tl.constexpr, BLOCK_SIZE_D: tl.constexpr, BLOCK_SIZE_N: tl.constexpr,
    CAUSAL: tl.constexpr, MASKED: tl.constexpr,
):  # fmt: skip
    """Online softmax over the key blocks [lo, hi): acc, row sum l_i and row max m_i updated."""
    offs_n = lo + tl.arange(0, BLOCK_SIZE_N)
    k_ptrs = k_base + offs_n[:, None] * stride_kn + offs_d[None, :] * stride_kd
    v_ptrs = v_base + offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd
    for _ in range(lo, hi, BLOCK_SIZE_N):
        k = _load_rows(k_ptrs, offs_n, SEQ_K, offs_d, HEAD_DIM, BLOCK_SIZE_D, MASKED)
        v = _load_rows(v_ptrs, offs_n, SEQ_K, offs_d, HEAD_DIM, BLOCK_SIZE_D, MASKED)
        qk = tl.dot(q, tl.trans(k)) * qk_scale
        if MASKED:
            qk = tl.where(_visible(offs_m, offs_n, SEQ_Q, SEQ_K, CAUSAL), qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        p = tl.exp2(qk - m_new[:, None])
        alpha = tl.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None])
        m_i = m_new
        offs_n += BLOCK_SIZE_N
        k_ptrs += BLOCK_SIZE_N * stride_kn
        v_ptrs += BLOCK_SIZE_N * stride_vn
    return acc, l_i, m_i


@triton.jit
def attn_fwd_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr, lse_ptr,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_ob, stride_oh, stride_om, stride_od,
    HEADS_Q, SEQ_Q, SEQ_K, qk_scale,
    GROUP_SIZE: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_SIZE_D: tl.constexpr,
    BLOCK_SIZE_M: tl.constexpr, BLOCK_SIZE_N: tl.constexpr,
    CAUSAL: tl.constexpr,
):  # fmt: skip
    """Grid (cdiv(SEQ_Q, BLOCK_SIZE_M), batch * HEADS_Q): one block of query rows of one head."""
    start_m = tl.program_id(0) * BLOCK_SIZE_M
    off_bh = tl.program_id(1)
    off_b = off_bh // HEADS_Q
    off_h = off_bh % HEADS_Q
    off_hkv = off_h // GROUP_SIZE

    offs_m = start_m + tl.arange(0, BLOCK_SIZE_M)
    offs_d = tl.arange(0, BLOCK_SIZE_D)
    q_ptrs = (
        q_ptr
        + off_b * stride_qb
        + off_h * stride_qh
        + offs_m[:, None] * stride_qm
        + offs_d[None, :] * stride_qd
    )
    q = _load_rows(q_ptrs, offs_m, SEQ_Q, offs_d, HEAD_DIM, BLOCK_SIZE_D, True)
    k_base = k_ptr + off_b * stride_kb + off_hkv * stride_kh
    v_base = v_ptr + off_b * stride_vb + off_hkv * stride_vh

    # m_i starts finite so that a row whose keys are all masked gives exp2(-inf - m) = 0, not NaN.
    m_i = tl.full((BLOCK_SIZE_M,), -1.0e30, tl.float32)
    l_i = tl.zeros((BLOCK_SIZE_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_SIZE_M, BLOCK_SIZE_D), dtype=tl.float32)
    full_hi, hi = _causal_key_bounds(start_m, SEQ_Q, SEQ_K, BLOCK_SIZE_M, BLOCK_SIZE_N, CAUSAL)
    acc, l_i, m_i = _attn_fwd_range(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
                                    offs_m, offs_d, 0, full_hi, SEQ_Q, SEQ_K, qk_scale,
                                    HEAD_DIM, BLOCK_SIZE_D, BLOCK_SIZE_N, CAUSAL, False)  # fmt: skip
    acc, l_i, m_i = _attn_fwd_range(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
                                    offs_m, offs_d, full_hi, hi, SEQ_Q, SEQ_K, qk_scale,
                                    HEAD_DIM, BLOCK_SIZE_D, BLOCK_SIZE_N, CAUSAL, True)  # fmt: skip

    seen = l_i > 0.0  # False for rows that see no key: output 0, lse -inf
    o = acc / tl.where(seen, l_i, 1.0)[:, None]
    lse = tl.where(seen, (m_i + tl.log2(tl.where(seen, l_i, 1.0))) * LN2, float("-inf"))
    tl.store(lse_ptr + off_bh * SEQ_Q + offs_m, lse, mask=offs_m < SEQ_Q)
    o_ptrs = (
        o_ptr
        + off_b * stride_ob
        + off_h * stride_oh
        + offs_m[:, None] * stride_om
        + offs_d[None, :] * stride_od
    )
    _store_rows(o_ptrs, o.to(o_ptr.dtype.element_ty), offs_m, SEQ_Q, offs_d, HEAD_DIM, BLOCK_SIZE_D)


# ---- backward ------------------------------------------------------------------------------------


@triton.jit
def attn_bwd_preprocess_kernel(
    o_ptr, do_ptr, delta_ptr,
    stride_ob, stride_oh, stride_om, stride_od,
    stride_dob, stride_doh, stride_dom, stride_dod,
    HEADS_Q, SEQ_Q,
    HEAD_DIM: tl.constexpr, BLOCK_SIZE_D: tl.constexpr, BLOCK_SIZE_M: tl.constexpr,
):  # fmt: skip
    """delta_i = sum_d o_id * do_id (fp32), the row term of the softmax backward."""
    start_m = tl.program_id(0) * BLOCK_SIZE_M
    off_bh = tl.program_id(1)
    off_b = off_bh // HEADS_Q
    off_h = off_bh % HEADS_Q
    offs_m = start_m + tl.arange(0, BLOCK_SIZE_M)
    offs_d = tl.arange(0, BLOCK_SIZE_D)
    o = _load_rows(o_ptr + off_b * stride_ob + off_h * stride_oh + offs_m[:, None] * stride_om + offs_d[None, :] * stride_od,
                   offs_m, SEQ_Q, offs_d, HEAD_DIM, BLOCK_SIZE_D, True)  # fmt: skip
    do = _load_rows(do_ptr + off_b * stride_dob + off_h * stride_doh + offs_m[:, None] * stride_dom + offs_d[None, :] * stride_dod,
                    offs_m, SEQ_Q, offs_d, HEAD_DIM, BLOCK_SIZE_D, True)  # fmt: skip
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    tl.store(delta_ptr + off_bh * SEQ_Q + offs_m, delta, mask=offs_m < SEQ_Q)


@triton.jit
def _attn_bwd_dkdv_range(
    dk, dv, k, v, q_base, do_base, lse_base, delta_base,
    stride_qm, stride_qd, stride_dom, stride_dod,
    offs_n, offs_d, lo, hi, SEQ_Q, SEQ_K, qk_scale,
    HEAD_DIM: tl.constexpr, BLOCK_SIZE_D: tl.constexpr, BLOCK_SIZE_M: tl.constexpr,
    CAUSAL: tl.constexpr, MASKED: tl.constexpr,
):  # fmt: skip
    """dk, dv (BLOCK_SIZE_N, BLOCK_SIZE_D) of one key block, accumulated over the query blocks
    [lo, hi) of one query head. Works on transposed scores (keys × queries) so no transpose of the
    result is needed."""
    offs_m = lo + tl.arange(0, BLOCK_SIZE_M)
    q_ptrs = q_base + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd
    do_ptrs = do_base + offs_m[:, None] * stride_dom + offs_d[None, :] * stride_dod
    for _ in range(lo, hi, BLOCK_SIZE_M):
        q = _load_rows(q_ptrs, offs_m, SEQ_Q, offs_d, HEAD_DIM, BLOCK_SIZE_D, MASKED)
        do = _load_rows(do_ptrs, offs_m, SEQ_Q, offs_d, HEAD_DIM, BLOCK_SIZE_D, MASKED)
        if MASKED:
            lse = tl.load(lse_base + offs_m, mask=offs_m < SEQ_Q, other=0.0)
            delta = tl.load(delta_base + offs_m, mask=offs_m < SEQ_Q, other=0.0)
        else:
            lse = tl.load(lse_base + offs_m)
            delta = tl.load(delta_base + offs_m)
        p_t = tl.exp2(tl.dot(k, tl.trans(q)) * qk_scale - lse[None, :] * LOG2E)
        if MASKED:
            # where, not a multiply: rows that see no key have lse -inf and exp2 gives inf there.
            visible_t = (offs_n[:, None] < SEQ_K) & (offs_m[None, :] < SEQ_Q)
            if CAUSAL:
                visible_t = visible_t & (offs_n[:, None] <= offs_m[None, :] + (SEQ_K - SEQ_Q))
            p_t = tl.where(visible_t, p_t, 0.0)
        dv = tl.dot(p_t.to(do.dtype), do, dv)
        dp_t = tl.dot(v, tl.trans(do))
        ds_t = (p_t * (dp_t - delta[None, :])).to(q.dtype)
        dk = tl.dot(ds_t, q, dk)
        offs_m += BLOCK_SIZE_M
        q_ptrs += BLOCK_SIZE_M * stride_qm
        do_ptrs += BLOCK_SIZE_M * stride_dom
    return dk, dv


@triton.jit
def attn_bwd_dkdv_kernel(
    q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, dk_ptr, dv_ptr,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_dob, stride_doh, stride_dom, stride_dod,
    stride_dkb, stride_dkh, stride_dkn, stride_dkd,
    stride_dvb, stride_dvh, stride_dvn, stride_dvd,
    HEADS_Q, HEADS_KV, SEQ_Q, SEQ_K, sm_scale, qk_scale,
    GROUP_SIZE: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_SIZE_D: tl.constexpr,
    BLOCK_SIZE_M: tl.constexpr, BLOCK_SIZE_N: tl.constexpr,
    CAUSAL: tl.constexpr,
):  # fmt: skip
    """Grid (cdiv(SEQ_K, BLOCK_SIZE_N), batch * HEADS_KV): dk and dv of one key block of one kv head,
    summed over the GROUP_SIZE query heads that read it (grouped-query attention), no atomics."""
    start_n = tl.program_id(0) * BLOCK_SIZE_N
    off_bh = tl.program_id(1)
    off_b = off_bh // HEADS_KV
    off_hkv = off_bh % HEADS_KV
    offs_n = start_n + tl.arange(0, BLOCK_SIZE_N)
    offs_d = tl.arange(0, BLOCK_SIZE_D)

    k = _load_rows(k_ptr + off_b * stride_kb + off_hkv * stride_kh + offs_n[:, None] * stride_kn + offs_d[None, :] * stride_kd,
                   offs_n, SEQ_K, offs_d, HEAD_DIM, BLOCK_SIZE_D, True)  # fmt: skip
    v = _load_rows(v_ptr + off_b * stride_vb + off_hkv * stride_vh + offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd,
                   offs_n, SEQ_K, offs_d, HEAD_DIM, BLOCK_SIZE_D, True)  # fmt: skip
    dk = tl.zeros((BLOCK_SIZE_N, BLOCK_SIZE_D), dtype=tl.float32)
    dv = tl.zeros((BLOCK_SIZE_N, BLOCK_SIZE_D), dtype=tl.float32)

    # Query blocks [lo, mid_lo) and [mid_hi, SEQ_Q) need masks; [mid_lo, mid_hi) see every key of
    # this block and lie inside SEQ_Q. All bounds are multiples of BLOCK_SIZE_M.
    m_blocks_end = tl.cdiv(SEQ_Q, BLOCK_SIZE_M) * BLOCK_SIZE_M
    if CAUSAL:
        # lo: the block of the first query row that sees a key of this block.
        lo = tl.maximum(start_n - (SEQ_K - SEQ_Q), 0) // BLOCK_SIZE_M * BLOCK_SIZE_M
        all_visible_from = tl.maximum(start_n + BLOCK_SIZE_N - 1 - (SEQ_K - SEQ_Q), 0)
        mid_lo = tl.cdiv(all_visible_from, BLOCK_SIZE_M) * BLOCK_SIZE_M
    else:
        lo = 0
        mid_lo = 0
    mid_lo = tl.minimum(tl.maximum(mid_lo, lo), m_blocks_end)
    if start_n + BLOCK_SIZE_N <= SEQ_K:  # noqa: SIM108  (a run-time branch in the kernel)
        mid_hi = tl.maximum((SEQ_Q // BLOCK_SIZE_M) * BLOCK_SIZE_M, mid_lo)
    else:  # a key tail block: every query block needs the mask
        mid_hi = mid_lo

    for g in range(GROUP_SIZE):
        off_h = off_hkv * GROUP_SIZE + g
        q_base = q_ptr + off_b * stride_qb + off_h * stride_qh
        do_base = do_ptr + off_b * stride_dob + off_h * stride_doh
        lse_base = lse_ptr + (off_b * HEADS_Q + off_h) * SEQ_Q
        delta_base = delta_ptr + (off_b * HEADS_Q + off_h) * SEQ_Q
        dk, dv = _attn_bwd_dkdv_range(dk, dv, k, v, q_base, do_base, lse_base, delta_base,
                                      stride_qm, stride_qd, stride_dom, stride_dod,
                                      offs_n, offs_d, lo, mid_lo, SEQ_Q, SEQ_K, qk_scale,
                                      HEAD_DIM, BLOCK_SIZE_D, BLOCK_SIZE_M, CAUSAL, True)  # fmt: skip
        dk, dv = _attn_bwd_dkdv_range(dk, dv, k, v, q_base, do_base, lse_base, delta_base,
                                      stride_qm, stride_qd, stride_dom, stride_dod,
                                      offs_n, offs_d, mid_lo, mid_hi, SEQ_Q, SEQ_K, qk_scale,
                                      HEAD_DIM, BLOCK_SIZE_D, BLOCK_SIZE_M, CAUSAL, False)  # fmt: skip
        dk, dv = _attn_bwd_dkdv_range(dk, dv, k, v, q_base, do_base, lse_base, delta_base,
                                      stride_qm, stride_qd, stride_dom, stride_dod,
                                      offs_n, offs_d, mid_hi, SEQ_Q, SEQ_Q, SEQ_K, qk_scale,
                                      HEAD_DIM, BLOCK_SIZE_D, BLOCK_SIZE_M, CAUSAL, True)  # fmt: skip

    dk = dk * sm_scale
    dk_ptrs = (
        dk_ptr
        + off_b * stride_dkb
        + off_hkv * stride_dkh
        + offs_n[:, None] * stride_dkn
        + offs_d[None, :] * stride_dkd
    )
    dv_ptrs = (
        dv_ptr
        + off_b * stride_dvb
        + off_hkv * stride_dvh
        + offs_n[:, None] * stride_dvn
        + offs_d[None, :] * stride_dvd
    )
    _store_rows(dk_ptrs, dk.to(dk_ptr.dtype.element_ty), offs_n, SEQ_K, offs_d, HEAD_DIM, BLOCK_SIZE_D)
    _store_rows(dv_ptrs, dv.to(dv_ptr.dtype.element_ty), offs_n, SEQ_K, offs_d, HEAD_DIM, BLOCK_SIZE_D)


@triton.jit
def _attn_bwd_dq_range(
    dq, q, do, lse, delta, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
    offs_m, offs_d, lo, hi, SEQ_Q, SEQ_K, qk_scale,
    HEAD_DIM: tl.constexpr, BLOCK_SIZE_D: tl.constexpr, BLOCK_SIZE_N: tl.constexpr,
    CAUSAL: tl.constexpr, MASKED: tl.constexpr,
):  # fmt: skip
    """dq (BLOCK_SIZE_M, BLOCK_SIZE_D) of one query block, accumulated over the key blocks [lo, hi)."""
    offs_n = lo + tl.arange(0, BLOCK_SIZE_N)
    k_ptrs = k_base + offs_n[:, None] * stride_kn + offs_d[None, :] * stride_kd
    v_ptrs = v_base + offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd
    for _ in range(lo, hi, BLOCK_SIZE_N):
        k = _load_rows(k_ptrs, offs_n, SEQ_K, offs_d, HEAD_DIM, BLOCK_SIZE_D, MASKED)
        v = _load_rows(v_ptrs, offs_n, SEQ_K, offs_d, HEAD_DIM, BLOCK_SIZE_D, MASKED)
        p = tl.exp2(tl.dot(q, tl.trans(k)) * qk_scale - lse[:, None] * LOG2E)
        if MASKED:
            p = tl.where(_visible(offs_m, offs_n, SEQ_Q, SEQ_K, CAUSAL), p, 0.0)
        dp = tl.dot(do, tl.trans(v))
        ds = (p * (dp - delta[:, None])).to(k.dtype)
        dq = tl.dot(ds, k, dq)
        offs_n += BLOCK_SIZE_N
        k_ptrs += BLOCK_SIZE_N * stride_kn
        v_ptrs += BLOCK_SIZE_N * stride_vn
    return dq


@triton.jit
def attn_bwd_dq_kernel(
    q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, dq_ptr,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_dob, stride_doh, stride_dom, stride_dod,
    stride_dqb, stride_dqh, stride_dqm, stride_dqd,
    HEADS_Q, SEQ_Q, SEQ_K, sm_scale, qk_scale,
    GROUP_SIZE: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_SIZE_D: tl.constexpr,
    BLOCK_SIZE_M: tl.constexpr, BLOCK_SIZE_N: tl.constexpr,
    CAUSAL: tl.constexpr,
):  # fmt: skip
    """Grid (cdiv(SEQ_Q, BLOCK_SIZE_M), batch * HEADS_Q): dq of one block of query rows of one head."""
    start_m = tl.program_id(0) * BLOCK_SIZE_M
    off_bh = tl.program_id(1)
    off_b = off_bh // HEADS_Q
    off_h = off_bh % HEADS_Q
    off_hkv = off_h // GROUP_SIZE
    offs_m = start_m + tl.arange(0, BLOCK_SIZE_M)
    offs_d = tl.arange(0, BLOCK_SIZE_D)

    q = _load_rows(q_ptr + off_b * stride_qb + off_h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd,
                   offs_m, SEQ_Q, offs_d, HEAD_DIM, BLOCK_SIZE_D, True)  # fmt: skip
    do = _load_rows(do_ptr + off_b * stride_dob + off_h * stride_doh + offs_m[:, None] * stride_dom + offs_d[None, :] * stride_dod,
                    offs_m, SEQ_Q, offs_d, HEAD_DIM, BLOCK_SIZE_D, True)  # fmt: skip
    # Rows past SEQ_Q read lse 0: finite, and never stored.
    lse = tl.load(lse_ptr + off_bh * SEQ_Q + offs_m, mask=offs_m < SEQ_Q, other=0.0)
    delta = tl.load(delta_ptr + off_bh * SEQ_Q + offs_m, mask=offs_m < SEQ_Q, other=0.0)
    k_base = k_ptr + off_b * stride_kb + off_hkv * stride_kh
    v_base = v_ptr + off_b * stride_vb + off_hkv * stride_vh

    dq = tl.zeros((BLOCK_SIZE_M, BLOCK_SIZE_D), dtype=tl.float32)
    full_hi, hi = _causal_key_bounds(start_m, SEQ_Q, SEQ_K, BLOCK_SIZE_M, BLOCK_SIZE_N, CAUSAL)
    dq = _attn_bwd_dq_range(dq, q, do, lse, delta, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
                            offs_m, offs_d, 0, full_hi, SEQ_Q, SEQ_K, qk_scale,
                            HEAD_DIM, BLOCK_SIZE_D, BLOCK_SIZE_N, CAUSAL, False)  # fmt: skip
    dq = _attn_bwd_dq_range(dq, q, do, lse, delta, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
                            offs_m, offs_d, full_hi, hi, SEQ_Q, SEQ_K, qk_scale,
                            HEAD_DIM, BLOCK_SIZE_D, BLOCK_SIZE_N, CAUSAL, True)  # fmt: skip
    dq = dq * sm_scale
    dq_ptrs = (
        dq_ptr
        + off_b * stride_dqb
        + off_h * stride_dqh
        + offs_m[:, None] * stride_dqm
        + offs_d[None, :] * stride_dqd
    )
    _store_rows(dq_ptrs, dq.to(dq_ptr.dtype.element_ty), offs_m, SEQ_Q, offs_d, HEAD_DIM, BLOCK_SIZE_D)
