// C = A @ B on the CPU, fp32 and fp64: cache-blocked, packed panels, SIMD micro-kernels picked at
// run time (AVX-512, AVX2 or portable), OpenMP across cores.
//
// A (M x K) and B (K x N) are read through element strides (row stride, column stride), so a
// transposed or sliced view needs no copy: packing reads through the strides, and a row-major A
// is read in place. C (M x N) is written row-major with leading dimension ldc (elements). Any
// M, N >= 0 and K >= 0 (K = 0 writes zeros). The packing buffers are kept per thread between calls
// (the B panel is half a core's L2) so repeated calls do not page-fault fresh memory.
#pragma once

#include <string>

namespace zhisuan::cpu {

void gemm_f32(long m, long n, long k, const float* a, long a_rs, long a_cs, const float* b, long b_rs,
              long b_cs, float* c, long ldc);
void gemm_f64(long m, long n, long k, const double* a, long a_rs, long a_cs, const double* b, long b_rs,
              long b_cs, double* c, long ldc);

// The instruction-set level the micro-kernels use now ("avx512", "avx2" or "portable"; isa.h).
std::string gemm_isa();
// Force a level ("auto" restores the automatic choice, the widest the CPU runs); throws
// std::invalid_argument for an unknown name or one this CPU cannot run.
void gemm_set_isa(const std::string& name);

// Threads used by gemm: 0 means OpenMP's default (all cores, or OMP_NUM_THREADS).
void gemm_set_threads(int n);
int gemm_threads();

}  // namespace zhisuan::cpu
