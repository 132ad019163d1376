// Thin overloads over the x86 vector intrinsics, one namespace per instruction set, so kernels can
// be written once per ISA as templates over float and double.
//
// Every function carries its ISA as a target attribute and is always inlined into callers with the
// same attribute: the portable build compiles them all, and only code the run-time dispatch picked
// ever executes them.
#pragma once

#if defined(__x86_64__)
#include <immintrin.h>
#define ZHISUAN_X86 1

namespace zhisuan::cpu::simd {

namespace avx2 {
#define ZHISUAN_AVX2 __attribute__((target("avx2,fma"), always_inline)) inline

ZHISUAN_AVX2 __m256 zero(float) { return _mm256_setzero_ps(); }
ZHISUAN_AVX2 __m256d zero(double) { return _mm256_setzero_pd(); }
ZHISUAN_AVX2 __m256 set1(float x) { return _mm256_set1_ps(x); }
ZHISUAN_AVX2 __m256d set1(double x) { return _mm256_set1_pd(x); }
ZHISUAN_AVX2 __m256 load(const float* p) { return _mm256_load_ps(p); }
ZHISUAN_AVX2 __m256d load(const double* p) { return _mm256_load_pd(p); }
ZHISUAN_AVX2 __m256 loadu(const float* p) { return _mm256_loadu_ps(p); }
ZHISUAN_AVX2 __m256d loadu(const double* p) { return _mm256_loadu_pd(p); }
ZHISUAN_AVX2 void storeu(float* p, __m256 v) { _mm256_storeu_ps(p, v); }
ZHISUAN_AVX2 void storeu(double* p, __m256d v) { _mm256_storeu_pd(p, v); }
ZHISUAN_AVX2 __m256 bcast(const float* p) { return _mm256_broadcast_ss(p); }
ZHISUAN_AVX2 __m256d bcast(const double* p) { return _mm256_broadcast_sd(p); }
ZHISUAN_AVX2 __m256 fma(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
ZHISUAN_AVX2 __m256d fma(__m256d a, __m256d b, __m256d c) { return _mm256_fmadd_pd(a, b, c); }
ZHISUAN_AVX2 __m256 add(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
ZHISUAN_AVX2 __m256d add(__m256d a, __m256d b) { return _mm256_add_pd(a, b); }
ZHISUAN_AVX2 float first(__m256 v) { return _mm256_cvtss_f32(v); }
ZHISUAN_AVX2 double first(__m256d v) { return _mm256_cvtsd_f64(v); }

#undef ZHISUAN_AVX2
}  // namespace avx2

namespace avx512 {
#define ZHISUAN_AVX512 __attribute__((target("avx512f"), always_inline)) inline

ZHISUAN_AVX512 __m512 zero(float) { return _mm512_setzero_ps(); }
ZHISUAN_AVX512 __m512d zero(double) { return _mm512_setzero_pd(); }
ZHISUAN_AVX512 __m512 set1(float x) { return _mm512_set1_ps(x); }
ZHISUAN_AVX512 __m512d set1(double x) { return _mm512_set1_pd(x); }
ZHISUAN_AVX512 __m512 load(const float* p) { return _mm512_load_ps(p); }
ZHISUAN_AVX512 __m512d load(const double* p) { return _mm512_load_pd(p); }
ZHISUAN_AVX512 __m512 loadu(const float* p) { return _mm512_loadu_ps(p); }
ZHISUAN_AVX512 __m512d loadu(const double* p) { return _mm512_loadu_pd(p); }
ZHISUAN_AVX512 void storeu(float* p, __m512 v) { _mm512_storeu_ps(p, v); }
ZHISUAN_AVX512 void storeu(double* p, __m512d v) { _mm512_storeu_pd(p, v); }
// set1 from memory: GCC folds it into the FMA as an embedded broadcast ({1to16} / {1to8}).
ZHISUAN_AVX512 __m512 bcast(const float* p) { return _mm512_set1_ps(*p); }
ZHISUAN_AVX512 __m512d bcast(const double* p) { return _mm512_set1_pd(*p); }
ZHISUAN_AVX512 __m512 fma(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
ZHISUAN_AVX512 __m512d fma(__m512d a, __m512d b, __m512d c) { return _mm512_fmadd_pd(a, b, c); }
ZHISUAN_AVX512 __m512 add(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }
ZHISUAN_AVX512 __m512d add(__m512d a, __m512d b) { return _mm512_add_pd(a, b); }
ZHISUAN_AVX512 float first(__m512 v) { return _mm512_cvtss_f32(v); }
ZHISUAN_AVX512 double first(__m512d v) { return _mm512_cvtsd_f64(v); }

#undef ZHISUAN_AVX512
}  // namespace avx512

}  // namespace zhisuan::cpu::simd

#endif  // __x86_64__
