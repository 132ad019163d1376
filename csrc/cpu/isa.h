// Instruction-set levels of the CPU kernels: what each level needs, how it is compiled, how it is
// picked at run time. This is the one per-ISA idiom of csrc/cpu (gemm, attention, the FMA probe and
// the shared-memory reductions all use it):
//
//   * A kernel body is written once, in a .inc file, against the vector primitives of simd.h
//     (attention's uses GCC vector types of the level's width, kVectorBytes, with their operators).
//   * per_isa.h compiles that body once per level, into namespaces avx512, avx2 and portable, each
//     under its level's `#pragma GCC target` (ZHISUAN_TARGET_BEGIN_*), with that level's primitives
//     in scope. The default build is portable x86-64, so every level is in every build.
//   * At run time the caller turns a name ("auto" or a level) into an Isa with select_isa, and
//     takes the matching namespace's entry point with pick(isa, avx512::f, avx2::f, portable::f).
//
// Levels, narrowest first:
//   portable  plain C++ on GCC generic vectors of 16 bytes: any CPU (SSE2 on x86-64)
//   avx2      AVX2 + FMA + F16C + BMI2 (Intel Haswell, AMD Zen and later)
//   avx512    AVX-512 F, DQ, BW, VL on top of avx2 (Intel Skylake-SP, AMD Zen 4 and later)
// A level's run-time check (isa_supported) tests exactly the features its target enables.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#if defined(__x86_64__)
#define ZHISUAN_X86 1
#endif

// The GCC targets of the levels (portable is the build's baseline and has none). A macro, not a
// constant, because it must reach _Pragma as a string literal.
#define ZHISUAN_TARGET_AVX2 "avx2,fma,f16c,bmi2"
#define ZHISUAN_TARGET_AVX512 "avx512f,avx512dq,avx512bw,avx512vl", ZHISUAN_TARGET_AVX2

// Compile what follows, up to ZHISUAN_TARGET_END, for one level.
#define ZHISUAN_PRAGMA(...) _Pragma(#__VA_ARGS__)
#define ZHISUAN_TARGET_BEGIN(...) _Pragma("GCC push_options") ZHISUAN_PRAGMA(GCC target(__VA_ARGS__))
#define ZHISUAN_TARGET_BEGIN_AVX2 ZHISUAN_TARGET_BEGIN(ZHISUAN_TARGET_AVX2)
#define ZHISUAN_TARGET_BEGIN_AVX512 ZHISUAN_TARGET_BEGIN(ZHISUAN_TARGET_AVX512)
#define ZHISUAN_TARGET_END _Pragma("GCC pop_options")

namespace zhisuan::cpu {

enum class Isa { portable, avx2, avx512 };

constexpr Isa kIsasWidestFirst[] = {Isa::avx512, Isa::avx2, Isa::portable};

inline const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return "avx512";
    case Isa::avx2:
      return "avx2";
    case Isa::portable:
      return "portable";
  }
  return "?";
}

inline bool isa_supported(Isa isa) {
#ifdef ZHISUAN_X86
  // __builtin_cpu_supports reads CPUID and also checks that the OS saves the wide registers.
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c") && __builtin_cpu_supports("bmi2");
  switch (isa) {
    case Isa::avx512:
      return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    case Isa::avx2:
      return avx2;
    case Isa::portable:
      return true;
  }
  return false;
#else
  return isa == Isa::portable;
#endif
}

// The widest level this CPU runs.
inline Isa widest_isa() {
  for (Isa isa : kIsasWidestFirst)
    if (isa_supported(isa)) return isa;
  return Isa::portable;
}

// The names of the levels this CPU runs, widest first.
inline std::vector<std::string> supported_isa_names() {
  std::vector<std::string> names;
  for (Isa isa : kIsasWidestFirst)
    if (isa_supported(isa)) names.emplace_back(isa_name(isa));
  return names;
}

// "auto" -> the widest level this CPU runs; a level's name -> that level. Throws
// std::invalid_argument, starting with `who`, for an unknown name or a level this CPU cannot run.
inline Isa select_isa(const std::string& name, const std::string& who) {
  if (name == "auto") return widest_isa();
  for (Isa isa : kIsasWidestFirst) {
    if (name != isa_name(isa)) continue;
    if (!isa_supported(isa)) throw std::invalid_argument(who + ": this CPU cannot run " + name);
    return isa;
  }
  throw std::invalid_argument(who + ": unknown ISA '" + name + "' (auto, avx512, avx2, portable)");
}

// The definition of the level `isa` among one per level (the namespaces made by per_isa.h).
template <typename T>
T pick(Isa isa, T avx512, T avx2, T portable) {
  switch (isa) {
    case Isa::avx512:
      return avx512;
    case Isa::avx2:
      return avx2;
    case Isa::portable:
      break;
  }
  return portable;
}

}  // namespace zhisuan::cpu
