// Compiles one kernel body once per instruction-set level (the idiom is described in isa.h):
//
//   #include "cpu/simd.h"                               // at the top of the .cpp
//   ...
//   #define ZHISUAN_PER_ISA_BODY "cpu/gemm_kernel.inc"  // where the per-level namespaces belong
//   #include "cpu/per_isa.h"
//
// makes namespaces avx512, avx2 and portable there, each holding the body compiled under its
// level's target with that level's primitives (simd::<level>) in scope. The body also sees what
// its includer declared before this point. On a CPU family without the x86 levels, avx512 and avx2
// name the portable namespace, so dispatch tables compile everywhere (isa_supported never picks
// them there).
//
// No include guard: included once per body.
#ifndef ZHISUAN_PER_ISA_BODY
#error "define ZHISUAN_PER_ISA_BODY (the kernel body's header) before including cpu/per_isa.h"
#endif

#ifdef ZHISUAN_X86
ZHISUAN_TARGET_BEGIN_AVX512
namespace avx512 {
using namespace ::zhisuan::cpu::simd::avx512;
#include ZHISUAN_PER_ISA_BODY
}  // namespace avx512
ZHISUAN_TARGET_END

ZHISUAN_TARGET_BEGIN_AVX2
namespace avx2 {
using namespace ::zhisuan::cpu::simd::avx2;
#include ZHISUAN_PER_ISA_BODY
}  // namespace avx2
ZHISUAN_TARGET_END
#endif

namespace portable {
using namespace ::zhisuan::cpu::simd::portable;
#include ZHISUAN_PER_ISA_BODY
}  // namespace portable

#ifndef ZHISUAN_X86
namespace avx512 = portable;
namespace avx2 = portable;
#endif

#undef ZHISUAN_PER_ISA_BODY
