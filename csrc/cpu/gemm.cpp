// Cache-blocked GEMM in the BLIS structure (Van Zee & van de Geijn, "BLIS: A Framework for Rapidly
// Instantiating BLAS Functionality", 2015), run by each thread on its own rectangle of C:
//
//   for jc in N step NC:                B panel (KC x NC), packed                -> half of L2
//     for pc in K step KC:
//       pack B panel
//       for ic in M step MC:            A block (MC x KC), in place or packed    -> L2
//         pack A block (only what cannot be read in place)
//         for jr in NC step NR:         B sliver (KC x NR), reused MC / MR times
//           for ir in MC step MR:       micro-kernel: MR x NR tile of C in registers
//
// B is the micro-kernel's vector operand (NR is several vectors wide) and A the broadcast one, so
// the B panel, not the A block, is what must stay close: its slivers stream from L2 through every
// micro-kernel call. NC is sized from the L2 read at run time (panel_columns), so the panel is not
// left in L3 where the first call on each sliver would wait for it. A row-major A is read in place:
// an A sliver is then MR rows of KC contiguous elements, streams the hardware prefetchers follow,
// and packing it would copy all of A once per B panel for nothing. Only the last sliver of a ragged
// M and an A with non-unit column stride (a transposed view) are packed.
//
// Threads split C into a grid of rectangles (split_threads) and never wait for each other: every
// thread packs the parts of A and B its rectangle needs. A shared B panel would save one thread
// the packing of its half of B (a few % of the work at 1024^3), but needs two barriers per KC step,
// and on a shared machine each barrier can wait a whole scheduler time slice for a thread whose
// core was lent to another process. The first KC step writes C, the later ones accumulate, so C
// needs no zeroing. Edge tiles (M or N not a multiple of the tile) run the same kernel on
// zero-padded panels into a scratch tile and copy back the valid part. A short C (a few rows of
// tiles) with a row-major B reads B in place instead of packing it: each B element is used only a
// few times, so packing would cost more than it saves (matrix-vector products, LLM decoding).
//
// The micro-kernel (gemm_kernel.inc) is compiled once per instruction-set level (isa.h); the
// level's register tile and cache blocks are in plan_for. The measurements behind these choices
// are in docs/benchmarks/cpu.md ("Notes moved from the sources").
#include "cpu/gemm.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>

#include "cpu/isa.h"
#include "cpu/simd.h"

namespace zhisuan::cpu {
namespace {

// How far ahead (in k steps) the micro-kernel prefetches a packed A sliver: it streams from L2.
constexpr int kPrefetchA = 8;

#define ZHISUAN_PER_ISA_BODY "cpu/gemm_kernel.inc"
#include "cpu/per_isa.h"

template <typename T>
using MicroKernel = void (*)(long kc, const T* a, long a_rs, long a_cs, const T* b, long ldb, T* c, long ldc,
                             bool accumulate);

// One configuration of the blocked algorithm: the register tile of its micro-kernel and the cache
// blocks sized around it (see plan_for).
template <typename T>
struct Plan {
  int mr, nr;  // register tile
  long kc;     // depth (K) of the packed panels
  long mc;     // rows of the A block (MC x KC in L2), a multiple of mr
  MicroKernel<T> ukr;
};

constexpr int kMaxTile = 8 * 64;  // elements of the largest register tile (scratch for edge tiles)

// Register tiles: MR rows x NV vectors of accumulators. AVX-512: 6 x 4 = 24 of the 32 zmm registers
// (+ 4 for B + 1 broadcast). AVX2 and portable: 6 x 2 = 12 of the 16 ymm / xmm registers (the
// classic Haswell tile). Cache blocks, for Zen 4 (32 KiB L1d, 1 MiB L2 per core) and the Intel cores
// alike: MC x KC of A (192 KiB) and the B panel (half the L2, panel_columns) share each core's L2.
// The AVX-512 fp32 KC is larger than the textbook "B sliver fits half of L1": fewer reloads of the
// C tile, and the L2 prefetchers stream the 128 KiB B sliver well. fp64 keeps the same byte sizes
// (half the elements).
template <typename T>
Plan<T> plan_for(Isa isa);

template <>
Plan<float> plan_for<float>(Isa isa) {
  return pick<Plan<float>>(isa, {6, 64, 512, 6 * 16, &avx512::micro_kernel<float, 6, 4>},
                           {6, 16, 256, 6 * 32, &avx2::micro_kernel<float, 6, 2>},
                           {6, 8, 256, 6 * 32, &portable::micro_kernel<float, 6, 2>});
}

template <>
Plan<double> plan_for<double>(Isa isa) {
  return pick<Plan<double>>(isa, {6, 32, 256, 6 * 16, &avx512::micro_kernel<double, 6, 4>},
                            {6, 8, 256, 6 * 16, &avx2::micro_kernel<double, 6, 2>},
                            {6, 4, 256, 6 * 16, &portable::micro_kernel<double, 6, 2>});
}

// Columns of the packed B panel: as many as fill half of one core's L2 at depth KC (a multiple of
// NR, at least one sliver); the other half holds the A block, C tiles and whatever else runs.
template <typename T>
long panel_columns(const Plan<T>& plan) {
  static const long l2_bytes = [] {
    long bytes = 0;
#ifdef _SC_LEVEL2_CACHE_SIZE
    bytes = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    return bytes > 0 ? bytes : 1L << 20;  // unknown: 1 MiB, the smallest L2 of the cores we target
  }();
  const long columns = l2_bytes / 2 / (plan.kc * static_cast<long>(sizeof(T)));
  return std::max<long>(plan.nr, columns / plan.nr * plan.nr);
}

// ---- settings shared by every call ----

std::atomic<int> g_forced_isa{-1};  // -1: automatic (the widest level the CPU runs)
std::atomic<int> g_threads{0};      // 0: OpenMP's default

// The widest level, AVX-512 included on Zen 4: Zen 4 executes a 512-bit FMA on its two 256-bit
// pipes, so the FMA peak is the same as with AVX2, but the 32 zmm registers hold a 6 x 64 tile (24
// accumulators) against AVX2's 6 x 16 (12): half the loads, broadcasts and instructions per FLOP.
Isa current_isa() {
  const int forced = g_forced_isa.load(std::memory_order_relaxed);
  return forced < 0 ? widest_isa() : static_cast<Isa>(forced);
}

long ceil_div(long a, long b) { return (a + b - 1) / b; }

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

// R full rows, each contiguous (p stride 1), interleaved: dst[p * R + r] = src[r * s_r + p]. One
// pass with R read streams and contiguous writes, rather than a pass per row.
template <typename T, int R>
void pack_rows(T* __restrict dst, const T* __restrict src, long s_r, long kc) {
  const T* lines[R];
  for (int r = 0; r < R; ++r) lines[r] = src + r * s_r;
  for (long p = 0; p < kc; ++p) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) dst[p * R + r] = lines[r][p];
  }
}

// One sliver: dst[p * R + r] = src[r * s_r + p * s_p] for r < rows (zero for rows <= r < R),
// p < kc. Reads along whichever stride is 1, so row-major and transposed inputs both stream.
template <typename T>
void pack_sliver(T* __restrict dst, const T* __restrict src, long s_r, long s_p, int rows, int R, long kc) {
  if (s_p == 1 && s_r != 1) {
    if (rows == 6 && R == 6) return pack_rows<T, 6>(dst, src, s_r, kc);  // the micro-kernels' MR
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

// A panel of slivers: `total` rows split into slivers of R (the last one zero-padded). With
// s_r == 1 (a row-major B) it copies row p of every sliver before row p + 1: the reads then run
// along B's rows, instead of reading kc rows at a large stride at once as sliver after sliver would.
template <typename T>
void pack_panel(T* __restrict dst, const T* __restrict src, long s_r, long s_p, long total, int R, long kc) {
  const long slivers = ceil_div(total, R);
  if (s_r != 1) {
    for (long s = 0; s < slivers; ++s)
      pack_sliver(dst + s * R * kc, src + s * R * s_r, s_r, s_p, static_cast<int>(std::min<long>(R, total - s * R)),
                  R, kc);
    return;
  }
  const long full = total / R;
  for (long p = 0; p < kc; ++p) {
    const T* line = src + p * s_p;
    for (long s = 0; s < full; ++s) std::memcpy(dst + s * R * kc + p * R, line + s * R, sizeof(T) * R);
  }
  if (full < slivers)
    pack_sliver(dst + full * R * kc, src + full * R, 1, s_p, static_cast<int>(total - full * R), R, kc);
}

// ---- work split ----

// [begin, end) of part `index` of `count` near-equal parts of `total` units.
void split_range(long total, long count, long index, long* begin, long* end) {
  *begin = total * index / count;
  *end = total * (index + 1) / count;
}

// A short C with a row-major B reads B in place (see the top of this file), up to 8 rows of tiles:
// beyond that, packing B pays for itself. The KC step shrinks with the rows: each micro-kernel call then
// walks only 8 rows of B per tile row, and all the slivers of one KC step sweep those rows left to
// right, a pattern the hardware prefetchers follow (a full KC of 512 defeats them).
constexpr long kInPlaceMaxTiles = 8;  // rows of register tiles
constexpr long kInPlaceKcPerTile = 8;

bool b_in_place(long m_tiles, long b_cs) { return b_cs == 1 && m_tiles <= kInPlaceMaxTiles; }

// A full sliver of a row-major A is read in place (see the top of this file).
bool a_in_place(long a_cs, int rows, int mr) { return a_cs == 1 && rows == mr; }

struct Grid {
  long rows, cols;  // threads along M and along N
};

// The thread grid with the least work for the busiest thread: its tiles (MR x NR multiply-adds
// each per k, at a vector's lanes per cycle) plus the A rows and B columns it packs (about one
// cycle per element per k).
template <typename T>
Grid split_threads(int threads, long m_tiles, long n_slivers, int mr, int nr, bool packs_b) {
  const double lanes = 64.0 / sizeof(T);
  Grid best{1, threads};
  double best_cost = -1;
  for (long rows = 1; rows <= threads; ++rows) {
    if (threads % rows != 0) continue;
    const long cols = threads / rows;
    const double tiles_m = ceil_div(m_tiles, rows), tiles_n = ceil_div(n_slivers, cols);
    const double cost = tiles_m * tiles_n * mr * nr / lanes + tiles_m * mr + (packs_b ? tiles_n * nr : 0.0);
    if (best_cost < 0 || cost < best_cost) {
      best = {rows, cols};
      best_cost = cost;
    }
  }
  return best;
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
// The A sliver's element (i, p) is a_sliver[i * a_rs + p * a_cs] (see gemm_kernel.inc).
template <typename T>
void tile(const Plan<T>& plan, long kc, const T* a_sliver, long a_rs, long a_cs, const T* b_sliver, long ldb,
          T* c_tile, long ldc, int rows, int cols, bool accumulate) {
  if (rows == plan.mr && cols == plan.nr) {
    plan.ukr(kc, a_sliver, a_rs, a_cs, b_sliver, ldb, c_tile, ldc, accumulate);
    return;
  }
  alignas(64) T scratch[kMaxTile];
  plan.ukr(kc, a_sliver, a_rs, a_cs, b_sliver, ldb, scratch, plan.nr, false);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j)
      c_tile[i * ldc + j] = accumulate ? c_tile[i * ldc + j] + scratch[i * plan.nr + j] : scratch[i * plan.nr + j];
}

// One thread's whole product on its rectangle of C (m x n), with its own packing buffers.
template <typename T>
void gemm_serial(const Plan<T>& plan, long m, long n, long k, const T* a, long a_rs, long a_cs, const T* b,
                 long b_rs, long b_cs, T* c, long ldc) {
  const int mr = plan.mr, nr = plan.nr;
  const bool in_place = b_in_place(ceil_div(m, mr), b_cs);
  const long kc_max = std::min(in_place ? kInPlaceKcPerTile * ceil_div(m, mr) : plan.kc, k);
  const long nc_max = std::min(panel_columns(plan), ceil_div(n, nr) * nr);
  const long mc_max = std::min(plan.mc, ceil_div(m, mr) * mr);
  // In place, only the last (partial) sliver is packed: a full-width read would run off B's rows.
  T* b_panel = static_cast<T*>(t_b_panel.get(sizeof(T) * kc_max * (in_place ? nr : nc_max)));
  T* a_block = static_cast<T*>(t_a_block.get(sizeof(T) * kc_max * mc_max));

  for (long jc = 0; jc < n; jc += nc_max) {
    const long nc = std::min(nc_max, n - jc);
    const long slivers = ceil_div(nc, nr);
    for (long pc = 0; pc < k; pc += kc_max) {
      const long kc = std::min(kc_max, k - pc);
      const bool accumulate = pc > 0;
      if (!in_place) {
        pack_panel(b_panel, b + pc * b_rs + jc * b_cs, b_cs, b_rs, nc, nr, kc);
      } else if (nc % nr != 0) {
        const long col = jc + (slivers - 1) * nr;
        pack_sliver(b_panel, b + pc * b_rs + col, 1, b_rs, static_cast<int>(n - col), nr, kc);
      }
      for (long ic = 0; ic < m; ic += mc_max) {
        const long mc = std::min(mc_max, m - ic);
        const long a_slivers = ceil_div(mc, mr);
        for (long t = 0; t < a_slivers; ++t) {
          const long row = ic + t * mr;
          const int rows = static_cast<int>(std::min<long>(mr, m - row));
          if (!a_in_place(a_cs, rows, mr))
            pack_sliver(a_block + t * mr * kc, a + row * a_rs + pc * a_cs, a_rs, a_cs, rows, mr, kc);
        }
        for (long s = 0; s < slivers; ++s) {
          const long col = jc + s * nr;
          const int cols = static_cast<int>(std::min<long>(nr, n - col));
          const bool direct = in_place && cols == nr;
          const T* b_sliver = direct ? b + pc * b_rs + col : in_place ? b_panel : b_panel + s * nr * kc;
          const long ldb = direct ? b_rs : nr;
          for (long t = 0; t < a_slivers; ++t) {
            const long row = ic + t * mr;
            const int rows = static_cast<int>(std::min<long>(mr, m - row));
            const bool direct_a = a_in_place(a_cs, rows, mr);
            const T* a_sliver = direct_a ? a + row * a_rs + pc : a_block + t * mr * kc;
            tile(plan, kc, a_sliver, direct_a ? a_rs : 1, direct_a ? 1 : mr, b_sliver, ldb, c + row * ldc + col, ldc,
                 rows, cols, accumulate);
          }
        }
      }
    }
  }
}

template <typename T>
void gemm(const Plan<T>& plan, long m, long n, long k, const T* a, long a_rs, long a_cs, const T* b,
          long b_rs, long b_cs, T* c, long ldc) {
  const int mr = plan.mr, nr = plan.nr;
  if (mr * nr > kMaxTile) throw std::logic_error("gemm: register tile larger than the edge scratch");
  const long m_tiles = ceil_div(m, mr), n_slivers = ceil_div(n, nr);
  const int threads = threads_for(m, n, k);
  if (threads == 1) {
    gemm_serial(plan, m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c, ldc);
    return;
  }
  const Grid grid = split_threads<T>(threads, m_tiles, n_slivers, mr, nr, !b_in_place(m_tiles, b_cs));
  std::exception_ptr failure;

#pragma omp parallel num_threads(threads)
  {
    // The team may be smaller than asked for (nested parallelism, thread limits): then the
    // grid is recomputed for the team actually running.
    const int team = omp_get_num_threads(), tid = omp_get_thread_num();
    const Grid g =
        team == threads ? grid : split_threads<T>(team, m_tiles, n_slivers, mr, nr, !b_in_place(m_tiles, b_cs));
    long tile0, tile1, sliver0, sliver1;
    split_range(m_tiles, g.rows, tid / g.cols, &tile0, &tile1);
    split_range(n_slivers, g.cols, tid % g.cols, &sliver0, &sliver1);
    const long row0 = tile0 * mr, row1 = std::min(m, tile1 * mr);
    const long col0 = sliver0 * nr, col1 = std::min(n, sliver1 * nr);
    try {
      if (row1 > row0 && col1 > col0)
        gemm_serial(plan, row1 - row0, col1 - col0, k, a + row0 * a_rs, a_rs, a_cs, b + col0 * b_cs, b_rs,
                    b_cs, c + row0 * ldc + col0, ldc);
    } catch (...) {  // an exception must not leave an OpenMP region: hand it to the caller
#pragma omp critical(zhisuan_gemm_error)
      failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
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

void gemm_set_isa(const std::string& name) {
  g_forced_isa.store(name == "auto" ? -1 : static_cast<int>(select_isa(name, "gemm_set_isa")));
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
