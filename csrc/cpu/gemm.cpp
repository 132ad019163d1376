// Cache-blocked GEMM in the BLIS structure (Van Zee & van de Geijn, "BLIS: A Framework for Rapidly
// Instantiating BLAS Functionality", 2015):
//
//   for jc in N step NC:            B panel  (KC x NC)  packed once, shared by all threads  -> L3
//     for pc in K step KC:
//       pack B panel (threads split the NR-wide slivers)
//       for ic in M step MC (a thread's unit):    A block (MC x KC), per thread          -> L2
//         pack A block
//         for jr in NC step NR:                     B sliver (KC x NR) reused MC/MR times
//           for ir in MC step MR:                   micro-kernel: MR x NR tile in registers
//
// All threads pack each B panel together, then share out its work units (row blocks of C, split
// into column groups only when C is too short to feed every thread; see work_split). The first KC
// block writes C, the later ones accumulate, so C needs no zeroing. Edge tiles (M or N not a
// multiple of the tile) run the same kernel on zero-padded panels into a scratch tile and copy
// back the valid part.
#include "cpu/gemm.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "cpu/simd_gemm_kernels.h"
#include "cpu/simd_isa.h"

namespace zhisuan::cpu {
namespace {

template <typename T>
using MicroKernel = void (*)(long kc, const T* a, const T* b, T* c, long ldc, bool accumulate);

// One configuration of the blocked algorithm: the register tile of its micro-kernel and the cache
// blocks sized around it (see plan_for).
template <typename T>
struct Plan {
  int mr, nr;  // register tile
  long kc;     // depth (K) of the packed panels
  long mc;     // rows of the packed A block (MC x KC in L2), a multiple of mr
  long nc;     // columns of the packed B panel (KC x NC in L3), a multiple of nr
  MicroKernel<T> ukr;
};

constexpr int kMaxTile = 8 * 64;  // elements of the largest register tile (scratch for edge tiles)

// Register tiles. AVX-512: 6 rows x 4 vectors = 24 zmm accumulators + 4 for B + 1 broadcast of the
// 32 registers. AVX2: 6 x 2 vectors = 12 of the 16 ymm registers (the classic Haswell tile).
// Cache blocks, for Zen 4 (32 KiB L1d, 1 MiB L2 per core, shared L3) and the Intel cores alike:
// MC x KC of A (192 KiB) stays in L2 while the B panel (KC x NC, up to 8 MiB) sits in L3. KC is
// larger than the textbook "B sliver fits half of L1": measured here, the fp32 AVX-512 kernel ran
// 3-6 % faster with KC = 512 than with 256 (fewer C tile reloads and barriers; the L2 prefetchers
// stream the 128 KiB B sliver well). fp64 keeps the same byte sizes (half the elements).
template <typename T>
Plan<T> plan_for(Isa isa);

template <>
Plan<float> plan_for<float>(Isa isa) {
#ifdef ZHISUAN_X86
  if (isa == Isa::avx512) return {6, 64, 512, 6 * 16, 64 * 64, &ukr::avx512::kernel<float, 6, 4>};
  if (isa == Isa::avx2) return {6, 16, 256, 6 * 32, 16 * 256, &ukr::avx2::kernel<float, 6, 2>};
#endif
  return {4, 16, 256, 4 * 32, 16 * 128, &ukr::scalar<float, 4, 16>};
}

template <>
Plan<double> plan_for<double>(Isa isa) {
#ifdef ZHISUAN_X86
  if (isa == Isa::avx512) return {6, 32, 256, 6 * 16, 32 * 64, &ukr::avx512::kernel<double, 6, 4>};
  if (isa == Isa::avx2) return {6, 8, 256, 6 * 16, 8 * 256, &ukr::avx2::kernel<double, 6, 2>};
#endif
  return {4, 8, 256, 4 * 32, 8 * 256, &ukr::scalar<double, 4, 8>};
}

// ---- settings shared by every call ----

std::atomic<int> g_forced_isa{-1};  // -1: automatic
std::atomic<int> g_threads{0};      // 0: OpenMP's default

// The widest ISA, AVX-512 included on Zen 4. Zen 4 executes a 512-bit FMA on its two 256-bit pipes,
// so the FMA peak is the same with AVX2 (the probe measures 117 GFLOP/s per core either way), but
// the 32 zmm registers hold a 6 x 64 tile (24 accumulators) against AVX2's 6 x 16 (12): half the
// loads, broadcasts and instructions per FLOP. Measured side by side (alternating, one process) on
// a 2-core Zen 4 VM, fp32 1024^3 and 2048^3: AVX-512 5-14 % faster (e.g. 194 vs 184 GFLOP/s).
Isa automatic_isa() { return widest_isa(); }

Isa current_isa() {
  const int forced = g_forced_isa.load(std::memory_order_relaxed);
  return forced < 0 ? automatic_isa() : static_cast<Isa>(forced);
}

// ---- packing ----

// A 64-byte aligned scratch buffer that only grows; one per thread (thread_local), so concurrent
// calls from different Python threads never share one.
class Scratch {
 public:
  ~Scratch() { std::free(data_); }
  void* get(std::size_t bytes) {
    if (bytes > size_) {
      std::free(data_);
      size_ = (bytes + 63) / 64 * 64;
      data_ = std::aligned_alloc(64, size_);
      if (data_ == nullptr) {
        size_ = 0;
        throw std::bad_alloc();
      }
    }
    return data_;
  }

 private:
  void* data_ = nullptr;
  std::size_t size_ = 0;
};

thread_local Scratch t_a_block;
thread_local Scratch t_b_panel;

// One sliver: dst[p * R + r] = src[r * s_r + p * s_p] for r < rows (zero for rows <= r < R),
// p < kc. Reads along whichever stride is 1, so row-major and transposed inputs both stream.
template <typename T>
void pack_sliver(T* __restrict dst, const T* __restrict src, long s_r, long s_p, int rows, int R, long kc) {
  if (s_p == 1 && s_r != 1) {
    for (int r = 0; r < rows; ++r) {
      const T* line = src + r * s_r;
      for (long p = 0; p < kc; ++p) dst[p * R + r] = line[p];
    }
    if (rows < R)
      for (long p = 0; p < kc; ++p) std::memset(dst + p * R + rows, 0, sizeof(T) * (R - rows));
    return;
  }
  for (long p = 0; p < kc; ++p) {
    const T* line = src + p * s_p;
    T* out = dst + p * R;
    if (s_r == 1) {
      std::memcpy(out, line, sizeof(T) * rows);
    } else {
      for (int r = 0; r < rows; ++r) out[r] = line[r * s_r];
    }
    if (rows < R) std::memset(out + rows, 0, sizeof(T) * (R - rows));
  }
}

// ---- work split ----

long ceil_div(long a, long b) { return (a + b - 1) / b; }

// [begin, end) of part `index` of `count` near-equal parts of `total` units.
void split_range(long total, long count, long index, long* begin, long* end) {
  *begin = total * index / count;
  *end = total * (index + 1) / count;
}

// How one KC step of one B panel is cut into work units: row blocks (at most MC rows, each packed
// once into an A block) times column groups (slices of the panel's slivers). Units are handed out
// dynamically: on a shared machine a thread whose core is lent to another process simply takes
// fewer units instead of holding everyone up at the next barrier.
struct Split {
  long row_blocks;  // near-equal blocks of the M / MR register-tile rows (split_range)
  long col_groups;
  long units() const { return row_blocks * col_groups; }
};

Split work_split(int threads, long m_tiles, long mc_tiles, long n_slivers) {
  // Split the columns only when the rows cannot keep every thread busy (a short, wide C).
  const long col_groups = std::min<long>(n_slivers, ceil_div(threads, std::max<long>(m_tiles, 1)));
  const long row_threads = std::max<long>(1, threads / col_groups);
  // At most MC rows per block, and a multiple of row_threads blocks so an even split exists.
  long blocks = ceil_div(ceil_div(m_tiles, mc_tiles), row_threads) * row_threads;
  return {std::min(blocks, m_tiles), col_groups};
}

int threads_for(long m, long n, long k) {
  const int configured = g_threads.load(std::memory_order_relaxed);
  const int threads = configured > 0 ? configured : omp_get_max_threads();
  // Below ~64^3 multiply-adds a parallel region costs more than it saves.
  if (static_cast<double>(m) * n * k < 64.0 * 64.0 * 64.0) return 1;
  return std::max(1, threads);
}

// ---- the blocked product ----

// C[rows x cols tile] (+)= A sliver x B sliver; edge tiles go through a zero-padded scratch tile.
template <typename T>
void tile(const Plan<T>& plan, long kc, const T* a_sliver, const T* b_sliver, T* c_tile, long ldc, int rows,
          int cols, bool accumulate) {
  if (rows == plan.mr && cols == plan.nr) {
    plan.ukr(kc, a_sliver, b_sliver, c_tile, ldc, accumulate);
    return;
  }
  alignas(64) T scratch[kMaxTile];
  plan.ukr(kc, a_sliver, b_sliver, scratch, plan.nr, false);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j)
      c_tile[i * ldc + j] = accumulate ? c_tile[i * ldc + j] + scratch[i * plan.nr + j] : scratch[i * plan.nr + j];
}

template <typename T>
void gemm(const Plan<T>& plan, long m, long n, long k, const T* a, long a_rs, long a_cs, const T* b,
          long b_rs, long b_cs, T* c, long ldc) {
  const int mr = plan.mr, nr = plan.nr;
  if (mr * nr > kMaxTile) throw std::logic_error("gemm: register tile larger than the edge scratch");
  const long kc_max = std::min(plan.kc, k);
  const long nc_max = std::min(plan.nc, ceil_div(n, nr) * nr);
  const long m_tiles = ceil_div(m, mr);
  const int threads = threads_for(m, n, k);
  const Split split = work_split(threads, m_tiles, plan.mc / mr, nc_max / nr);
  const long mc_max = ceil_div(m_tiles, split.row_blocks) * mr;

  T* b_panel = static_cast<T*>(t_b_panel.get(sizeof(T) * kc_max * nc_max));

#pragma omp parallel num_threads(threads)
  {
    T* a_block = static_cast<T*>(t_a_block.get(sizeof(T) * kc_max * mc_max));

    for (long jc = 0; jc < n; jc += nc_max) {
      const long nc = std::min(nc_max, n - jc);
      const long slivers = ceil_div(nc, nr);

      for (long pc = 0; pc < k; pc += kc_max) {
        const long kc = std::min(kc_max, k - pc);
        const bool accumulate = pc > 0;

#pragma omp for schedule(dynamic, 2)
        for (long s = 0; s < slivers; ++s) {
          const long col = jc + s * nr;
          const int cols = static_cast<int>(std::min<long>(nr, n - col));
          pack_sliver(b_panel + s * nr * kc, b + pc * b_rs + col * b_cs, b_cs, b_rs, cols, nr, kc);
        }  // implicit barrier: the panel is complete before anyone reads it

        long packed_block = -1;  // the row block now in a_block (units of one block are consecutive)
#pragma omp for schedule(dynamic, 1)
        for (long unit = 0; unit < split.units(); ++unit) {
          const long block = unit / split.col_groups, group = unit % split.col_groups;
          long tile0, tile1;
          split_range(m_tiles, split.row_blocks, block, &tile0, &tile1);
          const long ic = tile0 * mr;
          const long a_slivers = tile1 - tile0;
          if (block != packed_block) {
            for (long t = 0; t < a_slivers; ++t) {
              const long row = ic + t * mr;
              const int rows = static_cast<int>(std::min<long>(mr, m - row));
              pack_sliver(a_block + t * mr * kc, a + row * a_rs + pc * a_cs, a_rs, a_cs, rows, mr, kc);
            }
            packed_block = block;
          }
          long s0, s1;
          split_range(slivers, split.col_groups, group, &s0, &s1);
          for (long s = s0; s < s1; ++s) {
            const long col = jc + s * nr;
            const int cols = static_cast<int>(std::min<long>(nr, n - col));
            for (long t = 0; t < a_slivers; ++t) {
              const long row = ic + t * mr;
              const int rows = static_cast<int>(std::min<long>(mr, m - row));
              tile(plan, kc, a_block + t * mr * kc, b_panel + s * nr * kc, c + row * ldc + col, ldc, rows, cols,
                   accumulate);
            }
          }
        }  // implicit barrier: everyone is done with this B panel before it is overwritten
      }
    }
  }
}

template <typename T>
void gemm_entry(long m, long n, long k, const T* a, long a_rs, long a_cs, const T* b, long b_rs, long b_cs,
                T* c, long ldc) {
  if (m < 0 || n < 0 || k < 0) throw std::invalid_argument("gemm: negative dimension");
  if (ldc < n) throw std::invalid_argument("gemm: ldc smaller than n");
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (long i = 0; i < m; ++i) std::memset(c + i * ldc, 0, sizeof(T) * n);
    return;
  }
  gemm(plan_for<T>(current_isa()), m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c, ldc);
}

}  // namespace

void gemm_f32(long m, long n, long k, const float* a, long a_rs, long a_cs, const float* b, long b_rs,
              long b_cs, float* c, long ldc) {
  gemm_entry(m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c, ldc);
}

void gemm_f64(long m, long n, long k, const double* a, long a_rs, long a_cs, const double* b, long b_rs,
              long b_cs, double* c, long ldc) {
  gemm_entry(m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c, ldc);
}

std::string gemm_isa() { return isa_name(current_isa()); }

std::vector<std::string> gemm_isas() {
  std::vector<std::string> names;
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::scalar})
    if (isa_supported(isa)) names.emplace_back(isa_name(isa));
  return names;
}

void gemm_set_isa(const std::string& name) {
  if (name == "auto") {
    g_forced_isa.store(-1);
    return;
  }
  Isa isa;
  if (!parse_isa(name, &isa))
    throw std::invalid_argument("gemm_set_isa: unknown ISA '" + name + "' (auto, avx512, avx2, scalar)");
  if (!isa_supported(isa)) throw std::invalid_argument("gemm_set_isa: this CPU cannot run " + name);
  g_forced_isa.store(static_cast<int>(isa));
}

void gemm_set_threads(int n) {
  if (n < 0) throw std::invalid_argument("gemm_set_threads: n must be >= 0 (0 = OpenMP default)");
  g_threads.store(n);
}

int gemm_threads() {
  const int configured = g_threads.load();
  return configured > 0 ? configured : omp_get_max_threads();
}

}  // namespace zhisuan::cpu
