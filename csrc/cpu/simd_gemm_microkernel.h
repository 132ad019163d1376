// The SIMD GEMM micro-kernel, written once for every instruction set.
//
// No include guard on purpose: simd_gemm_kernels.h includes this file once per ISA, inside a
// namespace that brings that ISA's simd:: overloads into scope and defines kVectorBytes, and inside
// a `#pragma GCC target(...)` region, so the template below is compiled for that ISA only.
//
// kernel<T, MR, NV>: C[MR x NR] (+)= A_sliver * B_sliver with NR = NV vectors; row k of the B
// sliver starts ldb elements after row k - 1 (NR when packed, B's row stride when read in place).
// The MR x NV
// accumulators stay in registers for the whole k loop; per k step it loads NV vectors of B and
// broadcasts MR scalars of A, issuing MR * NV independent FMAs (enough to hide the FMA latency,
// 4 cycles on Zen 4 and Skylake, times the FMA pipes).

template <typename T, int MR, int NV>
void kernel(long kc, const T* __restrict a, const T* __restrict b, long ldb, T* __restrict c, long ldc,
            bool accumulate) {
  using V = decltype(zero(T{}));
  constexpr int L = kVectorBytes / sizeof(T);
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = zero(T{});
  // The C tile is read only at the end: start its lines on their way now.
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);

  for (long p = 0; p < kc; ++p) {
    _mm_prefetch(reinterpret_cast<const char*>(a + kPrefetchA * MR), _MM_HINT_T0);
    V bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bv[j] = loadu(b + j * L);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const V ai = bcast(a + i);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] = fma(ai, bv[j], acc[i][j]);
    }
    a += MR;
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
