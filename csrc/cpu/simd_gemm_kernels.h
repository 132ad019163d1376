// GEMM micro-kernels: C[MR x NR] (+)= A_sliver[MR x kc] * B_sliver[kc x NR].
//
// Layouts (chosen by gemm.cpp): element (i, k) of the A sliver is a[i * a_rs + k * a_cs], (1, MR)
// when packed (MR consecutive elements per k) and (lda, 1) when a row-major A is read in place;
// the B sliver holds, for each k, NR consecutive elements, the next k ldb elements further
// (ldb = NR in a packed panel; B's own row stride when a row-major B is read in place). Packed
// slivers are 64-byte aligned and zero-padded, so a kernel always computes the full MR x NR tile
// (gemm.cpp reads in place only full tiles); C is row-major with leading dimension ldc.
//
// ukr::scalar is portable C++; ukr::avx2::kernel and ukr::avx512::kernel are the one SIMD kernel
// of simd_gemm_microkernel.h compiled for each ISA (a target pragma around the include), so this
// header compiles in the portable build and the caller picks a kernel at run time.
#pragma once

#include "cpu/simd_vec.h"

namespace zhisuan::cpu::ukr {

// How far ahead (in k steps) a packed A sliver is prefetched: it streams from L2.
constexpr int kPrefetchA = 8;

// ---- portable kernel (any CPU; the compiler vectorises it for the baseline ISA) ----
template <typename T, int MR, int NR>
void scalar(long kc, const T* __restrict a, long a_rs, long a_cs, const T* __restrict b, long ldb,
            T* __restrict c, long ldc, bool accumulate) {
  T acc[MR][NR] = {};
  for (long p = 0; p < kc; ++p) {
    for (int i = 0; i < MR; ++i) {
      const T ai = a[i * a_rs];
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * b[j];
    }
    a += a_cs;
    b += ldb;
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}

#ifdef ZHISUAN_X86

// ---- AVX2 + FMA: 256-bit vectors, 16 registers ----
namespace avx2 {
using namespace simd::avx2;
constexpr int kVectorBytes = 32;
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include "cpu/simd_gemm_microkernel.h"
#pragma GCC pop_options
}  // namespace avx2

// ---- AVX-512F: 512-bit vectors, 32 registers ----
namespace avx512 {
using namespace simd::avx512;
constexpr int kVectorBytes = 64;
#pragma GCC push_options
#pragma GCC target("avx512f")
#include "cpu/simd_gemm_microkernel.h"
#pragma GCC pop_options
}  // namespace avx512

#endif  // ZHISUAN_X86

}  // namespace zhisuan::cpu::ukr
