// FMA-throughput probe: the achievable peak FLOP/s of this CPU, measured.
//
// Each thread runs independent chains of vector FMAs (enough chains to cover the FMA latency times
// the number of FMA pipes of any current x86 core) for a fixed wall time, with no memory traffic,
// so the count of FMAs retired per second is the core's arithmetic ceiling as the hypervisor, the
// clocks and the power limits let it run now.
#pragma once

#include <string>

namespace zhisuan::cpu {

struct FmaProbeResult {
  double flops_per_s;       // best window: sum over threads of FLOPs / thread CPU time
  double wall_flops_per_s;  // best window: all threads' FLOPs / wall time (lower when shared)
  double cpu_share;         // in the best window, mean fraction of wall time our threads ran
  double seconds;           // wall time spent measuring (warm-up excluded)
  int threads;
  std::string isa;   // "avx512" | "avx2" | "portable"
  std::string dtype; // "fp32" | "fp64"
};

// dtype: "fp32" or "fp64"; threads: 0 for OpenMP's default (all cores); isa: "auto" (the widest the
// CPU runs) or a level name. The time is split into `windows` equal windows and the best one is
// reported: other work on the machine only ever lowers a window. The main figure counts each
// thread's time on its core (CPU time), so other processes sharing the cores do not lower it.
FmaProbeResult fma_probe(const std::string& dtype, int threads, double seconds, const std::string& isa,
                         int windows);

}  // namespace zhisuan::cpu
