// Instruction-set levels of the CPU kernels and their detection at run time.
//
// The default build is portable x86-64: the AVX2 and AVX-512 code paths are compiled into their own
// functions with __attribute__((target(...))) and picked here, once, from what the running CPU
// reports (__builtin_cpu_supports reads CPUID and checks that the OS saves the wide registers).
#pragma once

#include <string>

namespace zhisuan::cpu {

enum class Isa { scalar, avx2, avx512 };

inline const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return "avx512";
    case Isa::avx2:
      return "avx2";
    default:
      return "scalar";
  }
}

// "avx512" | "avx2" | "scalar" -> Isa; false when the name is none of them.
inline bool parse_isa(const std::string& name, Isa* out) {
  if (name == "avx512") {
    *out = Isa::avx512;
  } else if (name == "avx2") {
    *out = Isa::avx2;
  } else if (name == "scalar") {
    *out = Isa::scalar;
  } else {
    return false;
  }
  return true;
}

inline bool isa_supported(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  switch (isa) {
    case Isa::avx512:
      return __builtin_cpu_supports("avx512f");
    case Isa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    default:
      return true;
  }
#else
  return isa == Isa::scalar;
#endif
}

// The widest level this CPU runs.
inline Isa widest_isa() {
  if (isa_supported(Isa::avx512)) return Isa::avx512;
  if (isa_supported(Isa::avx2)) return Isa::avx2;
  return Isa::scalar;
}

}  // namespace zhisuan::cpu
