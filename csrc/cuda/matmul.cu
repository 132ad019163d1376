// Tensor-core GEMM, fp16/bf16 in, fp32 accumulation: C = A @ B (see matmul.h).
//
// Purpose: the readable reference kernel of the suite, measured against cuBLAS. It uses the
// Ampere-style path that also runs on Hopper: mma.sync.m16n8k16 fed by ldmatrix from shared
// memory, and a cp.async pipeline of kStages shared-memory stages so that global loads for later
// K tiles are in flight while the tensor cores work on the current one. (Hopper's own wgmma and
// copy-engine path is what the Triton TMA variant and cuBLAS use; this kernel does not.)
//
// Tiling: a block of 128 threads (4 warps, 2 x 2) computes a 128 x 128 tile of C; each warp a
// 64 x 64 sub-tile as 4 x 8 mma tiles of 16 x 8 (128 fp32 accumulators per thread). K advances
// 32 at a time. Blocks walk C in grouped order (kGroupM tile rows at a time) for L2 reuse.
//
// Layouts: each operand is "K-contiguous" (A row-major, B column-major) or "MN-contiguous"
// (A column-major, B row-major); a template flag per operand picks the shared-memory tile shape
// and whether ldmatrix transposes. Shared-memory rows are padded by 16 bytes, so the 8 row
// addresses of an ldmatrix phase fall in 8 different 16-byte bank groups (no conflicts).
//
// Bounds: tiles at the edges of M, N and K are zero-filled by cp.async's src-size operand
// (fewer source bytes than copied), and the epilogue stores only elements inside C.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "cuda/matmul.h"

namespace zhisuan {
namespace {

constexpr int kBlockM = 128;
constexpr int kBlockN = 128;
constexpr int kBlockK = 32;
constexpr int kStages = 4;
constexpr int kWarpsM = 2;
constexpr int kWarpsN = 2;
constexpr int kThreads = 32 * kWarpsM * kWarpsN;
constexpr int kWarpM = kBlockM / kWarpsM;  // 64
constexpr int kWarpN = kBlockN / kWarpsN;  // 64
constexpr int kMmaTilesM = kWarpM / 16;    // 4 tiles of 16 rows
constexpr int kMmaTilesN = kWarpN / 8;     // 8 tiles of 8 columns
constexpr int kGroupM = 8;
constexpr int kPad = 8;                    // elements (16 bytes) of padding per shared-memory row
constexpr int kChunk = 8;                  // elements per 16-byte cp.async

// A shared-memory tile of `outer` x kBlockK elements: K-contiguous as [outer][kBlockK + kPad],
// MN-contiguous as [kBlockK][outer + kPad].
template <bool KContiguous, int Outer>
struct TileShape {
  static constexpr int kRows = KContiguous ? Outer : kBlockK;
  static constexpr int kCols = KContiguous ? kBlockK : Outer;
  static constexpr int kLd = kCols + kPad;
  static constexpr int kElements = kRows * kLd;
};

// ---- PTX wrappers -------------------------------------------------------------------------------

__device__ __forceinline__ std::uint32_t shared_address(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}

// Copies src_bytes (0..16) from global memory and zero-fills the rest of the 16 bytes.
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(smem)), "l"(gmem),
               "r"(src_bytes));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int Pending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending));
}

// Four 8x8 b16 matrices; lane l gives the row address of matrix l / 8, row l % 8.
template <bool Transpose>
__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], const void* smem) {
  if constexpr (Transpose) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(smem)));
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(smem)));
  }
}

// d (16x8 fp32) += a (16x16, row) * b (16x8, col).
template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2]);

template <>
__device__ __forceinline__ void mma_16816<__half>(float (&d)[4], const std::uint32_t (&a)[4],
                                                  const std::uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&d)[4], const std::uint32_t (&a)[4],
                                                         const std::uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// ---- global -> shared -------------------------------------------------------------------------

// One operand tile for K offset k0. `outer0`/`outer_total` are the tile's first row (A) or column
// (B) and the matrix's M or N; `ld` the operand's leading dimension (its non-unit stride).
template <typename T, bool KContiguous, int Outer>
__device__ __forceinline__ void load_tile(T* smem, const T* base, std::int64_t ld, int outer0, int outer_total,
                                          int k0, int k_total) {
  using Shape = TileShape<KContiguous, Outer>;
  constexpr int kChunksPerRow = Shape::kCols / kChunk;
  constexpr int kChunks = Shape::kRows * kChunksPerRow;
  static_assert(kChunks % kThreads == 0, "every thread copies the same number of chunks");
#pragma unroll
  for (int i = 0; i < kChunks / kThreads; ++i) {
    const int chunk = static_cast<int>(threadIdx.x) + i * kThreads;
    const int row = chunk / kChunksPerRow;
    const int col = (chunk % kChunksPerRow) * kChunk;
    // Rows of the tile run along `outer` (K-contiguous) or along K; columns the other way.
    const int g_outer = outer0 + (KContiguous ? row : col);
    const int g_k = k0 + (KContiguous ? col : row);
    int valid = 0;  // elements of this 8-element chunk inside the matrix
    if (KContiguous) {
      if (g_outer < outer_total) valid = min(max(k_total - g_k, 0), kChunk);
    } else {
      if (g_k < k_total) valid = min(max(outer_total - g_outer, 0), kChunk);
    }
    const std::int64_t offset = KContiguous ? static_cast<std::int64_t>(g_outer) * ld + g_k
                                            : static_cast<std::int64_t>(g_k) * ld + g_outer;
    // An empty chunk still needs a valid address: the matrix start, read for 0 bytes.
    const T* src = valid > 0 ? base + offset : base;
    cp_async_16(smem + row * Shape::kLd + col, src, valid * static_cast<int>(sizeof(T)));
  }
}

// ---- shared -> registers ------------------------------------------------------------------------

// A fragments (16 x 16) of the warp's 4 row tiles at K offset kk of the stage.
template <bool KContiguous>
__device__ __forceinline__ void load_a_fragments(std::uint32_t (&a)[kMmaTilesM][4], const void* tile, int warp_m,
                                                 int kk, int lane) {
  using Shape = TileShape<KContiguous, kBlockM>;
  const auto* t = static_cast<const std::uint16_t*>(tile);
#pragma unroll
  for (int mi = 0; mi < kMmaTilesM; ++mi) {
    const int m0 = warp_m + mi * 16;
    if constexpr (KContiguous) {
      // Matrices: (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15).
      ldmatrix_x4<false>(a[mi], t + (m0 + lane % 16) * Shape::kLd + kk + (lane / 16) * 8);
    } else {
      // Stored [k][m]: the same four matrices, read transposed; lane l points at k row l % 8.
      const int matrix = lane / 8;
      ldmatrix_x4<true>(a[mi], t + (kk + (matrix / 2) * 8 + lane % 8) * Shape::kLd + m0 + (matrix % 2) * 8);
    }
  }
}

// B fragments (16 x 8) of the warp's 8 column tiles, two per ldmatrix.x4.
template <bool KContiguous>
__device__ __forceinline__ void load_b_fragments(std::uint32_t (&b)[kMmaTilesN][2], const void* tile, int warp_n,
                                                 int kk, int lane) {
  using Shape = TileShape<KContiguous, kBlockN>;
  const auto* t = static_cast<const std::uint16_t*>(tile);
#pragma unroll
  for (int nj = 0; nj < kMmaTilesN / 2; ++nj) {
    const int n0 = warp_n + nj * 16;
    std::uint32_t r[4];
    if constexpr (KContiguous) {
      // Stored [n][k]: matrices (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15).
      const int matrix = lane / 8;
      ldmatrix_x4<false>(r, t + (n0 + (matrix / 2) * 8 + lane % 8) * Shape::kLd + kk + (matrix % 2) * 8);
    } else {
      // Stored [k][n], read transposed: (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15).
      ldmatrix_x4<true>(r, t + (kk + lane % 16) * Shape::kLd + n0 + (lane / 16) * 8);
    }
    b[2 * nj][0] = r[0];
    b[2 * nj][1] = r[1];
    b[2 * nj + 1][0] = r[2];
    b[2 * nj + 1][1] = r[3];
  }
}

// ---- the kernel ---------------------------------------------------------------------------------

template <typename T, bool AKContiguous, bool BKContiguous>
__global__ void __launch_bounds__(kThreads)
    gemm_mma_kernel(int m, int n, int k, const T* __restrict__ a, std::int64_t lda, const T* __restrict__ b,
                    std::int64_t ldb, T* __restrict__ c, std::int64_t ldc, bool c_pairs) {
  using ATile = TileShape<AKContiguous, kBlockM>;
  using BTile = TileShape<BKContiguous, kBlockN>;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  T* a_stages = reinterpret_cast<T*>(shared_bytes);
  T* b_stages = a_stages + kStages * ATile::kElements;

  // Grouped tile order: kGroupM rows of tiles, walked column by column.
  const int tiles_m = (m + kBlockM - 1) / kBlockM;
  const int tiles_n = (n + kBlockN - 1) / kBlockN;
  const int per_group = kGroupM * tiles_n;
  const int first_m = (static_cast<int>(blockIdx.x) / per_group) * kGroupM;
  const int group_rows = min(tiles_m - first_m, kGroupM);
  const int tile_m = first_m + (static_cast<int>(blockIdx.x) % per_group) % group_rows;
  const int tile_n = (static_cast<int>(blockIdx.x) % per_group) / group_rows;
  const int block_m0 = tile_m * kBlockM;
  const int block_n0 = tile_n * kBlockN;

  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int warp_m = (warp / kWarpsN) * kWarpM;
  const int warp_n = (warp % kWarpsN) * kWarpN;

  float acc[kMmaTilesM][kMmaTilesN][4];
#pragma unroll
  for (int mi = 0; mi < kMmaTilesM; ++mi)
#pragma unroll
    for (int ni = 0; ni < kMmaTilesN; ++ni)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[mi][ni][r] = 0.0f;

  auto load_stage = [&](int stage, int k0) {
    load_tile<T, AKContiguous, kBlockM>(a_stages + stage * ATile::kElements, a, lda, block_m0, m, k0, k);
    load_tile<T, BKContiguous, kBlockN>(b_stages + stage * BTile::kElements, b, ldb, block_n0, n, k0, k);
  };

  // Pipeline: tiles 0 .. kStages-2 in flight before the loop; each iteration waits for its tile,
  // starts the copy of the tile kStages-1 ahead (into the stage freed by the previous iteration),
  // then multiplies. A group is committed every iteration, empty or not, so that
  // wait_group(kStages - 2) always means "the tile of this iteration has landed".
  const int k_tiles = (k + kBlockK - 1) / kBlockK;
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < k_tiles) load_stage(s, s * kBlockK);
    cp_async_commit();
  }
  for (int kt = 0; kt < k_tiles; ++kt) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // this tile visible to all; every warp done with the stage reloaded next
    const int next = kt + kStages - 1;
    if (next < k_tiles) load_stage(next % kStages, next * kBlockK);
    cp_async_commit();

    const T* a_tile = a_stages + (kt % kStages) * ATile::kElements;
    const T* b_tile = b_stages + (kt % kStages) * BTile::kElements;
#pragma unroll
    for (int kk = 0; kk < kBlockK; kk += 16) {
      std::uint32_t a_frag[kMmaTilesM][4];
      std::uint32_t b_frag[kMmaTilesN][2];
      load_a_fragments<AKContiguous>(a_frag, a_tile, warp_m, kk, lane);
      load_b_fragments<BKContiguous>(b_frag, b_tile, warp_n, kk, lane);
#pragma unroll
      for (int mi = 0; mi < kMmaTilesM; ++mi)
#pragma unroll
        for (int ni = 0; ni < kMmaTilesN; ++ni) mma_16816<T>(acc[mi][ni], a_frag[mi], b_frag[ni]);
    }
  }
  cp_async_wait<0>();

  // Epilogue: accumulator r of tile (mi, ni) sits at row lane/4 (+8 for r >= 2), column
  // 2 * (lane % 4) (+1 for odd r) of that 16 x 8 tile.
#pragma unroll
  for (int mi = 0; mi < kMmaTilesM; ++mi) {
#pragma unroll
    for (int ni = 0; ni < kMmaTilesN; ++ni) {
      const int col = block_n0 + warp_n + ni * 8 + 2 * (lane % 4);
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int row = block_m0 + warp_m + mi * 16 + lane / 4 + half * 8;
        if (row >= m) continue;
        T* out = c + static_cast<std::int64_t>(row) * ldc + col;
        const float x0 = acc[mi][ni][2 * half];
        const float x1 = acc[mi][ni][2 * half + 1];
        if (c_pairs && col + 1 < n) {
          T pair[2] = {from_float<T>(x0), from_float<T>(x1)};
          *reinterpret_cast<std::uint32_t*>(out) = *reinterpret_cast<const std::uint32_t*>(pair);
        } else {
          if (col < n) out[0] = from_float<T>(x0);
          if (col + 1 < n) out[1] = from_float<T>(x1);
        }
      }
    }
  }
}

// ---- host side ----------------------------------------------------------------------------------

// How a matrix lies in memory: row- or column-major with leading dimension ld (0 when only one
// row/column exists and ld is never used), or the reason the kernel cannot read it in place.
struct Layout {
  bool row_major = true;
  std::int64_t ld = 0;
  std::string problem;
};

Layout layout_of(std::uintptr_t ptr, std::int64_t rows, std::int64_t cols, std::int64_t stride_row,
                 std::int64_t stride_col, std::int64_t element_size) {
  Layout l;
  if (rows == 1 && (stride_col == 1 || cols == 1)) {
    l.row_major = true;
  } else if (cols == 1 && stride_row == 1) {
    l.row_major = false;
  } else if (stride_col == 1) {
    l = Layout{true, stride_row, ""};
  } else if (stride_row == 1) {
    l = Layout{false, stride_col, ""};
  } else {
    l.problem = "no unit stride (strides " + std::to_string(stride_row) + ", " + std::to_string(stride_col) + ")";
    return l;
  }
  if ((l.ld * element_size) % 16 != 0) {
    l.problem = "rows not 16-byte aligned (leading dimension " + std::to_string(l.ld) + ")";
  } else if (ptr % 16 != 0) {
    l.problem = "start not 16-byte aligned";
  }
  return l;
}

// The kernel's view of an operand: where it starts, its leading dimension, and whether K is the
// contiguous index (A row-major, B column-major).
struct Operand {
  std::uintptr_t ptr;
  std::int64_t ld;
  bool k_contiguous;
};

template <typename T, bool AK, bool BK>
void launch(int m, int n, int k, const Operand& a, const Operand& b, std::uintptr_t c, std::int64_t ldc,
            cudaStream_t stream) {
  const auto kernel = gemm_mma_kernel<T, AK, BK>;
  const size_t shared =
      kStages * (TileShape<AK, kBlockM>::kElements + TileShape<BK, kBlockN>::kElements) * sizeof(T);
  // Above 48 KB a kernel must opt in; set on every launch since the attribute is per device.
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared));
  if (err != cudaSuccess) throw std::runtime_error(std::string("CUDA: ") + cudaGetErrorString(err));
  const int tiles = ((m + kBlockM - 1) / kBlockM) * ((n + kBlockN - 1) / kBlockN);
  const bool c_pairs = c % 4 == 0 && ldc % 2 == 0;
  kernel<<<tiles, kThreads, shared, stream>>>(m, n, k, reinterpret_cast<const T*>(a.ptr), a.ld,
                                              reinterpret_cast<const T*>(b.ptr), b.ld, reinterpret_cast<T*>(c), ldc,
                                              c_pairs);
  err = cudaGetLastError();
  if (err != cudaSuccess) throw std::runtime_error(std::string("CUDA: ") + cudaGetErrorString(err));
}

template <typename T>
void dispatch(int m, int n, int k, const Operand& a, const Operand& b, std::uintptr_t c, std::int64_t ldc,
              cudaStream_t stream) {
  if (a.k_contiguous && b.k_contiguous) return launch<T, true, true>(m, n, k, a, b, c, ldc, stream);
  if (a.k_contiguous) return launch<T, true, false>(m, n, k, a, b, c, ldc, stream);
  if (b.k_contiguous) return launch<T, false, true>(m, n, k, a, b, c, ldc, stream);
  return launch<T, false, false>(m, n, k, a, b, c, ldc, stream);
}

}  // namespace

std::string gemm_operand_problem(std::uintptr_t ptr, std::int64_t rows, std::int64_t cols, std::int64_t stride_row,
                                 std::int64_t stride_col, std::int64_t element_size) {
  return layout_of(ptr, rows, cols, stride_row, stride_col, element_size).problem;
}

void gemm_tensor_core(DType dtype, std::int64_t m, std::int64_t n, std::int64_t k, std::uintptr_t a,
                      std::int64_t a_stride_row, std::int64_t a_stride_col, std::uintptr_t b,
                      std::int64_t b_stride_row, std::int64_t b_stride_col, std::uintptr_t c, std::int64_t ldc,
                      cudaStream_t stream) {
  if (dtype != DType::fp16 && dtype != DType::bf16)
    throw std::invalid_argument(std::string("gemm: dtype ") + dtype_name(dtype) + " not supported (fp16, bf16)");
  constexpr std::int64_t kMaxDim = (std::int64_t{1} << 31) - kBlockM;
  if (m < 1 || n < 1 || k < 1 || m > kMaxDim || n > kMaxDim || k > kMaxDim) {
    throw std::invalid_argument("gemm: M, N, K must be in [1, 2^31 - 128], got " + std::to_string(m) + ", " +
                                std::to_string(n) + ", " + std::to_string(k));
  }
  if (ldc < n) throw std::invalid_argument("gemm: ldc " + std::to_string(ldc) + " < N " + std::to_string(n));
  const Layout la = layout_of(a, m, k, a_stride_row, a_stride_col, 2);
  const Layout lb = layout_of(b, k, n, b_stride_row, b_stride_col, 2);
  if (!la.problem.empty()) throw std::invalid_argument("gemm: a: " + la.problem);
  if (!lb.problem.empty()) throw std::invalid_argument("gemm: b: " + lb.problem);
  const Operand op_a{a, la.ld, la.row_major};
  const Operand op_b{b, lb.ld, !lb.row_major};
  const int mi = static_cast<int>(m), ni = static_cast<int>(n), ki = static_cast<int>(k);
  if (dtype == DType::fp16) {
    dispatch<__half>(mi, ni, ki, op_a, op_b, c, ldc, stream);
  } else {
    dispatch<__nv_bfloat16>(mi, ni, ki, op_a, op_b, c, ldc, stream);
  }
}

}  // namespace zhisuan
