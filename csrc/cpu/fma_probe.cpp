// FMA-throughput probe (see fma_probe.h).
//
// Chains: chain j computes x_j <- x_j * mul + add, a dependent sequence, so one chain retires one
// FMA per FMA latency. With C independent chains a core retires min(C / latency, pipes) FMAs per
// cycle; C must reach latency x pipes: Zen 4 needs 4 for zmm (latency 4, one 512-bit FMA per cycle
// on its two 256-bit pipes) and 8 for ymm; Intel cores with two 512-bit units need 8 for zmm.
// We run 16 zmm / 12 ymm chains (12 xmm on the portable level; all fit in registers) for margin.
// mul < 1 makes every chain converge to add / (1 - mul) = 0.1, far from overflow and from subnormal
// numbers.
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

#include "cpu/isa.h"
#include "cpu/simd.h"

namespace zhisuan::cpu {
namespace {

constexpr long kChunkIters = 4096;  // iterations between clock reads (tens of microseconds)

template <typename T>
struct Chains {
  static constexpr T mul = T(0.999);
  static constexpr T add = T(1e-4);
};

#define ZHISUAN_PER_ISA_BODY "cpu/fma_chains.inc"
#include "cpu/per_isa.h"

template <typename T>
double flops_per_chunk(Isa isa) {
  return kChunkIters * pick(isa, avx512::kFlopsPerStep<T>, avx2::kFlopsPerStep<T>, portable::kFlopsPerStep<T>);
}

template <typename T>
T run_chunk(Isa isa, T seed) {
  return pick(isa, &avx512::chunk<T>, &avx2::chunk<T>, &portable::chunk<T>)(kChunkIters, seed, Chains<T>::mul,
                                                                             Chains<T>::add);
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
      flops[tid] = chunks * flops_per_chunk<T>(isa);
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

FmaProbeResult fma_probe(const std::string& dtype, int threads, double seconds, const std::string& requested_isa,
                         int windows) {
  if (dtype != "fp32" && dtype != "fp64")
    throw std::invalid_argument("fma_probe: dtype must be 'fp32' or 'fp64', got '" + dtype + "'");
  if (threads < 0) throw std::invalid_argument("fma_probe: threads must be >= 0 (0 = all cores)");
  if (!(seconds > 0) || seconds > 60)
    throw std::invalid_argument("fma_probe: seconds must be in (0, 60]");
  if (windows < 1) throw std::invalid_argument("fma_probe: windows must be >= 1");
  const Isa isa = select_isa(requested_isa, "fma_probe");
  const int team = threads > 0 ? threads : omp_get_max_threads();
  return dtype == "fp32" ? probe<float>(isa, team, seconds, windows) : probe<double>(isa, team, seconds, windows);
}

}  // namespace zhisuan::cpu
