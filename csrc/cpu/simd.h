// Vector primitives, one namespace per instruction-set level (see isa.h), with the same names in
// each, so that a kernel body compiled per level by per_isa.h is written once.
//
// Every level defines:
//   kVectorBytes, kRegisters   bytes per vector, vector registers
//   fp32 and fp64 vectors:     zero(T{}), set1(x), bcast(p) (set1 from memory), loadu(p),
//                              storeu(p, v), fma(a, b, c) = a * b + c, add(a, b), first(v)
//   reduction element I/O:     loadu(const Half*), loadu(const BFloat*) widen to an fp32 vector;
//                              storeu(Half*, v), storeu(BFloat*, v) narrow it, rounding to nearest
//                              even (a NaN stays a NaN); loadu / storeu of int32 vectors
//   reduction arithmetic:      maximum(a, b), minimum(a, b): on fp32 a NaN on either side
//                              propagates (as torch.maximum); add on int32 wraps around;
//                              divide(v, d) by a scalar
// The x86 levels wrap intrinsics; portable uses GCC's generic vectors, which the compiler lowers to
// the baseline's vectors (SSE2 on x86-64). Each namespace is compiled under its level's target and
// its functions are always inlined into callers compiled for the same level.
#pragma once

#include <cstdint>
#include <cstring>

#include "cpu/isa.h"

#if defined(ZHISUAN_X86)
#include <immintrin.h>
#endif

#define ZHISUAN_SIMD __attribute__((always_inline)) inline

namespace zhisuan::cpu {

// The two 16-bit float formats, as distinct element types (same bits, different meaning).
struct Half {
  uint16_t bits;
};
struct BFloat {
  uint16_t bits;
};

// The compiler's IEEE binary16 arithmetic type: _Float16, or on AArch64 with GCC before 13 (no
// _Float16 in C++ there) __fp16, the same format.
#if defined(__aarch64__) && !defined(__clang__) && __GNUC__ < 13
using Float16 = __fp16;
#else
using Float16 = _Float16;
#endif

// One element at a time: the tails of every level's vector loops.
inline float to_float(float x) { return x; }
inline float to_float(Half h) {
  Float16 v;
  std::memcpy(&v, &h.bits, 2);
  return static_cast<float>(v);
}
inline float to_float(BFloat b) {
  const uint32_t u = static_cast<uint32_t>(b.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline void store_float(float* d, float x) { *d = x; }
inline void store_float(Half* d, float x) {
  const Float16 v = static_cast<Float16>(x);  // round to nearest even
  std::memcpy(&d->bits, &v, 2);
}
inline void store_float(BFloat* d, float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) {
    d->bits = static_cast<uint16_t>((u >> 16) | 0x40u);  // NaN stays a (quiet) NaN
  } else {
    d->bits = static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);  // round to nearest even
  }
}

namespace simd {

#ifdef ZHISUAN_X86

ZHISUAN_TARGET_BEGIN_AVX512
namespace avx512 {
constexpr int kVectorBytes = 64;
constexpr int kRegisters = 32;

ZHISUAN_SIMD __m512 zero(float) { return _mm512_setzero_ps(); }
ZHISUAN_SIMD __m512d zero(double) { return _mm512_setzero_pd(); }
ZHISUAN_SIMD __m512 set1(float x) { return _mm512_set1_ps(x); }
ZHISUAN_SIMD __m512d set1(double x) { return _mm512_set1_pd(x); }
// set1 from memory: GCC folds it into the FMA as an embedded broadcast ({1to16} / {1to8}).
ZHISUAN_SIMD __m512 bcast(const float* p) { return _mm512_set1_ps(*p); }
ZHISUAN_SIMD __m512d bcast(const double* p) { return _mm512_set1_pd(*p); }
ZHISUAN_SIMD __m512 loadu(const float* p) { return _mm512_loadu_ps(p); }
ZHISUAN_SIMD __m512d loadu(const double* p) { return _mm512_loadu_pd(p); }
ZHISUAN_SIMD void storeu(float* p, __m512 v) { _mm512_storeu_ps(p, v); }
ZHISUAN_SIMD void storeu(double* p, __m512d v) { _mm512_storeu_pd(p, v); }
ZHISUAN_SIMD __m512 fma(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
ZHISUAN_SIMD __m512d fma(__m512d a, __m512d b, __m512d c) { return _mm512_fmadd_pd(a, b, c); }
ZHISUAN_SIMD __m512 add(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }
ZHISUAN_SIMD __m512d add(__m512d a, __m512d b) { return _mm512_add_pd(a, b); }
ZHISUAN_SIMD float first(__m512 v) { return _mm512_cvtss_f32(v); }
ZHISUAN_SIMD double first(__m512d v) { return _mm512_cvtsd_f64(v); }

ZHISUAN_SIMD __m512 loadu(const Half* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
ZHISUAN_SIMD __m512 loadu(const BFloat* p) {
  const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}
ZHISUAN_SIMD __m512i loadu(const int32_t* p) { return _mm512_loadu_si512(p); }
ZHISUAN_SIMD void storeu(Half* p, __m512 v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                      _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
ZHISUAN_SIMD void storeu(BFloat* p, __m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i high = _mm512_srli_epi32(u, 16);
  const __m512i lsb = _mm512_and_si512(high, _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  r = _mm512_mask_or_epi32(r, nan, high, _mm512_set1_epi32(0x40));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(r));
}
ZHISUAN_SIMD void storeu(int32_t* p, __m512i v) { _mm512_storeu_si512(p, v); }
// vmaxps / vminps return the second operand when either is NaN: blend a back in where a is NaN.
ZHISUAN_SIMD __m512 maximum(__m512 a, __m512 b) {
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), _mm512_max_ps(a, b), a);
}
ZHISUAN_SIMD __m512 minimum(__m512 a, __m512 b) {
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), _mm512_min_ps(a, b), a);
}
ZHISUAN_SIMD __m512i maximum(__m512i a, __m512i b) { return _mm512_max_epi32(a, b); }
ZHISUAN_SIMD __m512i minimum(__m512i a, __m512i b) { return _mm512_min_epi32(a, b); }
ZHISUAN_SIMD __m512i add(__m512i a, __m512i b) { return _mm512_add_epi32(a, b); }
ZHISUAN_SIMD __m512 divide(__m512 a, float d) { return _mm512_div_ps(a, _mm512_set1_ps(d)); }
}  // namespace avx512
ZHISUAN_TARGET_END

ZHISUAN_TARGET_BEGIN_AVX2
namespace avx2 {
constexpr int kVectorBytes = 32;
constexpr int kRegisters = 16;

ZHISUAN_SIMD __m256 zero(float) { return _mm256_setzero_ps(); }
ZHISUAN_SIMD __m256d zero(double) { return _mm256_setzero_pd(); }
ZHISUAN_SIMD __m256 set1(float x) { return _mm256_set1_ps(x); }
ZHISUAN_SIMD __m256d set1(double x) { return _mm256_set1_pd(x); }
ZHISUAN_SIMD __m256 bcast(const float* p) { return _mm256_broadcast_ss(p); }
ZHISUAN_SIMD __m256d bcast(const double* p) { return _mm256_broadcast_sd(p); }
ZHISUAN_SIMD __m256 loadu(const float* p) { return _mm256_loadu_ps(p); }
ZHISUAN_SIMD __m256d loadu(const double* p) { return _mm256_loadu_pd(p); }
ZHISUAN_SIMD void storeu(float* p, __m256 v) { _mm256_storeu_ps(p, v); }
ZHISUAN_SIMD void storeu(double* p, __m256d v) { _mm256_storeu_pd(p, v); }
ZHISUAN_SIMD __m256 fma(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
ZHISUAN_SIMD __m256d fma(__m256d a, __m256d b, __m256d c) { return _mm256_fmadd_pd(a, b, c); }
ZHISUAN_SIMD __m256 add(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
ZHISUAN_SIMD __m256d add(__m256d a, __m256d b) { return _mm256_add_pd(a, b); }
ZHISUAN_SIMD float first(__m256 v) { return _mm256_cvtss_f32(v); }
ZHISUAN_SIMD double first(__m256d v) { return _mm256_cvtsd_f64(v); }

ZHISUAN_SIMD __m256 loadu(const Half* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
ZHISUAN_SIMD __m256 loadu(const BFloat* p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}
ZHISUAN_SIMD __m256i loadu(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
ZHISUAN_SIMD void storeu(Half* p, __m256 v) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
ZHISUAN_SIMD void storeu(BFloat* p, __m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i high = _mm256_srli_epi32(u, 16);
  const __m256i lsb = _mm256_and_si256(high, _mm256_set1_epi32(1));
  __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb), 16);
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  r = _mm256_blendv_epi8(r, _mm256_or_si256(high, _mm256_set1_epi32(0x40)), nan);
  // Pack the eight 32-bit lanes (each < 0x10000) to 16 bits: packus works per 128-bit half, so
  // gather the two halves' results into the low 128 bits afterwards.
  const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(packed));
}
ZHISUAN_SIMD void storeu(int32_t* p, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
// vmaxps / vminps return the second operand when either is NaN: blend a back in where a is NaN.
ZHISUAN_SIMD __m256 maximum(__m256 a, __m256 b) {
  return _mm256_blendv_ps(_mm256_max_ps(a, b), a, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
}
ZHISUAN_SIMD __m256 minimum(__m256 a, __m256 b) {
  return _mm256_blendv_ps(_mm256_min_ps(a, b), a, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
}
ZHISUAN_SIMD __m256i maximum(__m256i a, __m256i b) { return _mm256_max_epi32(a, b); }
ZHISUAN_SIMD __m256i minimum(__m256i a, __m256i b) { return _mm256_min_epi32(a, b); }
ZHISUAN_SIMD __m256i add(__m256i a, __m256i b) { return _mm256_add_epi32(a, b); }
ZHISUAN_SIMD __m256 divide(__m256 a, float d) { return _mm256_div_ps(a, _mm256_set1_ps(d)); }
}  // namespace avx2
ZHISUAN_TARGET_END

#endif  // ZHISUAN_X86

namespace portable {
constexpr int kVectorBytes = 16;
constexpr int kRegisters = 16;  // x86-64's xmm0-15 (other CPUs have at least as many)

typedef float VecF __attribute__((vector_size(kVectorBytes)));
typedef double VecD __attribute__((vector_size(kVectorBytes)));
typedef int32_t VecI __attribute__((vector_size(kVectorBytes)));
typedef uint32_t VecU __attribute__((vector_size(kVectorBytes)));
typedef uint16_t VecU16 __attribute__((vector_size(kVectorBytes / 2)));  // one 16-bit value per fp32 lane
typedef Float16 VecH __attribute__((vector_size(kVectorBytes / 2)));

template <typename V, typename T>
ZHISUAN_SIMD V load_bytes(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

ZHISUAN_SIMD VecF zero(float) { return VecF{}; }
ZHISUAN_SIMD VecD zero(double) { return VecD{}; }
ZHISUAN_SIMD VecF set1(float x) { return VecF{} + x; }
ZHISUAN_SIMD VecD set1(double x) { return VecD{} + x; }
ZHISUAN_SIMD VecF bcast(const float* p) { return set1(*p); }
ZHISUAN_SIMD VecD bcast(const double* p) { return set1(*p); }
ZHISUAN_SIMD VecF loadu(const float* p) { return load_bytes<VecF>(p); }
ZHISUAN_SIMD VecD loadu(const double* p) { return load_bytes<VecD>(p); }
ZHISUAN_SIMD void storeu(float* p, VecF v) { std::memcpy(p, &v, sizeof v); }
ZHISUAN_SIMD void storeu(double* p, VecD v) { std::memcpy(p, &v, sizeof v); }
ZHISUAN_SIMD VecF fma(VecF a, VecF b, VecF c) { return a * b + c; }
ZHISUAN_SIMD VecD fma(VecD a, VecD b, VecD c) { return a * b + c; }
ZHISUAN_SIMD VecF add(VecF a, VecF b) { return a + b; }
ZHISUAN_SIMD VecD add(VecD a, VecD b) { return a + b; }
ZHISUAN_SIMD float first(VecF v) { return v[0]; }
ZHISUAN_SIMD double first(VecD v) { return v[0]; }

ZHISUAN_SIMD VecF loadu(const Half* p) { return __builtin_convertvector(load_bytes<VecH>(p), VecF); }
ZHISUAN_SIMD VecF loadu(const BFloat* p) { return (VecF)(__builtin_convertvector(load_bytes<VecU16>(p), VecU) << 16); }
ZHISUAN_SIMD VecI loadu(const int32_t* p) { return load_bytes<VecI>(p); }
ZHISUAN_SIMD void storeu(Half* p, VecF v) {
  const VecH h = __builtin_convertvector(v, VecH);  // round to nearest even
  std::memcpy(p, &h, sizeof h);
}
// As store_float(BFloat*, float), lane by lane: round to nearest even, a NaN stays a (quiet) NaN.
ZHISUAN_SIMD void storeu(BFloat* p, VecF v) {
  const VecU u = (VecU)v;
  const VecU high = u >> 16;
  const VecU rounded = (u + 0x7fffu + (high & 1u)) >> 16;
  const VecU nan = (VecU)((u & 0x7fffffffu) > 0x7f800000u);  // all ones where NaN
  const VecU16 b = __builtin_convertvector((nan & (high | 0x40u)) | (~nan & rounded), VecU16);
  std::memcpy(p, &b, sizeof b);
}
ZHISUAN_SIMD void storeu(int32_t* p, VecI v) { std::memcpy(p, &v, sizeof v); }
ZHISUAN_SIMD VecF maximum(VecF a, VecF b) { return (a > b) | (a != a) ? a : b; }
ZHISUAN_SIMD VecF minimum(VecF a, VecF b) { return (a < b) | (a != a) ? a : b; }
ZHISUAN_SIMD VecI maximum(VecI a, VecI b) { return a > b ? a : b; }
ZHISUAN_SIMD VecI minimum(VecI a, VecI b) { return a < b ? a : b; }
ZHISUAN_SIMD VecI add(VecI a, VecI b) { return (VecI)((VecU)a + (VecU)b); }  // unsigned: wraps
ZHISUAN_SIMD VecF divide(VecF a, float d) { return a / d; }
}  // namespace portable

}  // namespace simd
}  // namespace zhisuan::cpu
