// The SIMD GEMM micro-kernel, written once for every instruction set.
//
// No include guard on purpose: simd_gemm_kernels.h includes this file once per ISA, inside a
// namespace that brings that ISA's simd:: overloads into scope and defines kVectorBytes, and inside
// a `#pragma GCC target(...)` region, so the template below is compiled for that ISA only.
//
// kernel<T, MR, NV>: C[MR x NR] (+)= A_sliver * B_sliver with NR = NV vectors. Element (i, k) of the
// A sliver is a[i * a_rs + k * a_cs]: (1, MR) when packed, (lda, 1) when a row-major A is read in
// place. Row k of the B sliver starts ldb elements after row k - 1 (NR when packed, B's row stride
// when read in place). The MR x NV accumulators stay in registers for the whole k loop; per k step
// it loads NV vectors of B and broadcasts MR scalars of A, issuing MR * NV independent FMAs (enough
// to hide the FMA latency, 4 cycles on Zen 4 and Skylake, times the FMA pipes).

template <typename T, int MR, int NV>
void kernel(long kc, const T* __restrict a, long a_rs, long a_cs, const T* __restrict b, long ldb,
            T* __restrict c, long ldc, bool accumulate) {
  using V = decltype(zero(T{}));
  constexpr int L = kVectorBytes / sizeof(T);
  constexpr int kLineElems = 64 / sizeof(T);
  constexpr int kCLinesPerRow = (NV * L + kLineElems - 1) / kLineElems;
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = zero(T{});

  for (long p = 0; p < kc; ++p) {
    // A packed sliver streams from L2; read in place, its MR rows are streams the hardware
    // prefetcher follows by itself.
    if (a_rs == 1) _mm_prefetch(reinterpret_cast<const char*>(a + kPrefetchA * MR), _MM_HINT_T0);
    // The C tile is read only at the end: one of its lines per k step on its way to L1 in the
    // first steps. Measured on a 2-core Xeon (AVX-512), fp32 2048^3 one thread: 5-7 % of the
    // kernel's time went to C misses when only the first line of each row was prefetched, all
    // at once before the loop; with every line, all at once, the burst itself cost 3 %.
    if (p < MR * kCLinesPerRow)
      _mm_prefetch(reinterpret_cast<const char*>(c + (p / kCLinesPerRow) * ldc + (p % kCLinesPerRow) * kLineElems),
                   _MM_HINT_T0);
    V bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bv[j] = loadu(b + j * L);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const V ai = bcast(a + i * a_rs);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] = fma(ai, bv[j], acc[i][j]);
    }
    a += a_cs;
    b += ldb;
  }

#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      T* dst = c + i * ldc + j * L;
      storeu(dst, accumulate ? add(loadu(dst), acc[i][j]) : acc[i][j]);
    }
}
