// FMA-throughput probe (see fma_probe.h).
//
// Chains: chain j computes x_j <- x_j * mul + add, a dependent sequence, so one chain retires one
// FMA per FMA latency. With C independent chains a core retires min(C / latency, pipes) FMAs per
// cycle; C must reach latency x pipes: Zen 4 needs 4 for zmm (latency 4, one 512-bit FMA per cycle
// on its two 256-bit pipes) and 8 for ymm; Intel cores with two 512-bit units need 8 for zmm.
// We run 16 zmm / 12 ymm chains (all fit in registers) for margin. mul < 1 makes every chain
// converge to add / (1 - mul) = 0.1, far from overflow and from subnormal numbers.
//
// Rates are per thread CPU time (CLOCK_THREAD_CPUTIME_ID) as well as per wall time: on a shared
// machine the OS lends our threads' cores to other processes, which lowers the wall-time rate but
// not the rate of the core while it runs our chains, i.e. the chip's achievable peak.
#include "cpu/fma_probe.h"

#include <omp.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <vector>

#include "cpu/simd_isa.h"
#include "cpu/simd_vec.h"

namespace zhisuan::cpu {
namespace {

constexpr long kChunkIters = 4096;  // iterations between clock reads (tens of microseconds)

template <typename T>
struct Chains {
  static constexpr T mul = T(0.999);
  static constexpr T add = T(1e-4);
};

#ifdef ZHISUAN_X86
namespace avx512 {
using namespace simd::avx512;
constexpr int kChains = 16;
#pragma GCC push_options
#pragma GCC target("avx512f")
#include "cpu/simd_fma_chains.h"
#pragma GCC pop_options
}  // namespace avx512

namespace avx2 {
using namespace simd::avx2;
constexpr int kChains = 12;
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include "cpu/simd_fma_chains.h"
#pragma GCC pop_options
}  // namespace avx2
#endif

// Portable: 16 scalar chains (the compiler may pack them into the baseline's vectors; a
// multiply and an add count as the same 2 FLOPs as one FMA).
template <typename T>
__attribute__((noinline)) T run_scalar(long iters, T seed) {
  constexpr int C = 16;
  T x[C];
  for (int j = 0; j < C; ++j) x[j] = seed + T(j);
  for (long it = 0; it < iters; ++it)
    for (int j = 0; j < C; ++j) x[j] = x[j] * Chains<T>::mul + Chains<T>::add;
  T sum = 0;
  for (int j = 0; j < C; ++j) sum += x[j];
  return sum;
}

// FLOPs of one iteration of the chains loop: chains x lanes x 2.
template <typename T>
double flops_per_iter(Isa isa) {
  switch (isa) {
#ifdef ZHISUAN_X86
    case Isa::avx512:
      return avx512::kChains * (64.0 / sizeof(T)) * 2;
    case Isa::avx2:
      return avx2::kChains * (32.0 / sizeof(T)) * 2;
#endif
    default:
      return 16.0 * 2;
  }
}

template <typename T>
T run_chunk(Isa isa, T seed) {
#ifdef ZHISUAN_X86
  if (isa == Isa::avx512) return avx512::chains<T, avx512::kChains>(kChunkIters, seed, Chains<T>::mul, Chains<T>::add);
  if (isa == Isa::avx2) return avx2::chains<T, avx2::kChains>(kChunkIters, seed, Chains<T>::mul, Chains<T>::add);
#endif
  return run_scalar<T>(kChunkIters, seed);
}

using Clock = std::chrono::steady_clock;

double thread_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

template <typename T>
FmaProbeResult probe(Isa isa, int threads, double seconds, int windows) {
  const double window_s = seconds / windows;
  const double warmup_s = std::min(0.05, seconds / 4);
  std::vector<double> flops(threads), elapsed(threads), cpu(threads);
  double best = 0, best_wall = 0, measured = 0, cpu_share = 1;
  int team_size = threads;
  volatile T sink = 0;  // keeps the chains' results alive

#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num();
#pragma omp single
    team_size = omp_get_num_threads();
    T local = T(tid);
    // Warm-up: clocks ramp up and the team is scheduled before anything is counted.
    for (auto start = Clock::now(); std::chrono::duration<double>(Clock::now() - start).count() < warmup_s;)
      local += run_chunk<T>(isa, local * T(1e-3));

    for (int w = 0; w < windows; ++w) {
#pragma omp barrier
      const auto start = Clock::now();
      const double cpu_start = thread_cpu_seconds();
      long chunks = 0;
      double took = 0;
      do {
        local += run_chunk<T>(isa, local * T(1e-3));
        ++chunks;
        took = std::chrono::duration<double>(Clock::now() - start).count();
      } while (took < window_s);
      flops[tid] = chunks * kChunkIters * flops_per_iter<T>(isa);
      elapsed[tid] = took;
      cpu[tid] = thread_cpu_seconds() - cpu_start;
#pragma omp barrier
#pragma omp single
      {
        double total = 0, longest = 0, per_cpu = 0, share = 0;
        for (int t = 0; t < team_size; ++t) {
          total += flops[t];
          longest = std::max(longest, elapsed[t]);
          per_cpu += flops[t] / std::max(cpu[t], 1e-9);
          share += cpu[t] / elapsed[t] / team_size;
        }
        if (per_cpu > best) {
          best = per_cpu;
          cpu_share = share;
        }
        best_wall = std::max(best_wall, total / longest);
        measured += longest;
      }  // implicit barrier
    }
    sink = sink + local;
  }
  return {best, best_wall, std::min(cpu_share, 1.0), measured, team_size, isa_name(isa),
          sizeof(T) == 4 ? "fp32" : "fp64"};
}

}  // namespace

FmaProbeResult fma_probe(const std::string& dtype, int threads, double seconds, const std::string& isa_name_,
                         int windows) {
  if (dtype != "fp32" && dtype != "fp64")
    throw std::invalid_argument("fma_probe: dtype must be 'fp32' or 'fp64', got '" + dtype + "'");
  if (threads < 0) throw std::invalid_argument("fma_probe: threads must be >= 0 (0 = all cores)");
  if (!(seconds > 0) || seconds > 60)
    throw std::invalid_argument("fma_probe: seconds must be in (0, 60]");
  if (windows < 1) throw std::invalid_argument("fma_probe: windows must be >= 1");
  Isa isa = widest_isa();
  if (isa_name_ != "auto") {
    if (!parse_isa(isa_name_, &isa))
      throw std::invalid_argument("fma_probe: unknown ISA '" + isa_name_ + "' (auto, avx512, avx2, scalar)");
    if (!isa_supported(isa)) throw std::invalid_argument("fma_probe: this CPU cannot run " + isa_name_);
  }
  const int team = threads > 0 ? threads : omp_get_max_threads();
  return dtype == "fp32" ? probe<float>(isa, team, seconds, windows) : probe<double>(isa, team, seconds, windows);
}

}  // namespace zhisuan::cpu
