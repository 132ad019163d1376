// Attention forward, fp32, CPU: FlashAttention-2 tiling with an online softmax.
//
// Work is split into items (batch, query head, block of block_q queries), spread over OpenMP
// threads longest-first. An item walks the keys in blocks of block_k and keeps, per query, the
// running max m and sum l of exp(score - m) and an unnormalised output row; the score tile of one
// (key block, query block) pair is all that ever exists of the score matrix.
//
// Layout choice: the score tile is stored transposed, S[key][query], with queries along the vector
// lanes. QKᵀ then broadcasts elements of K rows against vectors of a per-item packed Qᵀ, so K is
// read in place (no transpose), and the softmax statistics are per-lane: max, exp and sum run
// vertically with no horizontal reductions. P·V broadcasts P[key][query] against rows of V.
// Both products are register-blocked micro-kernels (MR x NR vectors of accumulators).
//
// Scores are pre-multiplied by scale·log2(e) (folded into the packed Q) so the softmax uses exp2,
// computed by a degree-6 polynomial (max relative error ~1e-7, about 1 ulp).
//
// The kernels (attention_kernels.inc) are written once with GCC vector extensions and compiled once
// per instruction-set level (isa.h: AVX-512, AVX2, portable); the level is picked at run time from
// what the CPU supports, so the default build runs anywhere.
#include "cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include "cpu/isa.h"
#include "cpu/simd.h"

// Wide vectors are passed by value only between functions of one code path, compiled for one
// target, so the ABI note GCC gives for vector arguments does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace zhisuan::cpu {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kPad = 16;  // buffers are padded to multiples of the widest vector (floats)

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// ---- the plan shared by all work items -------------------------------------------------------

// A (batch, head) -> matrix view: row r of head (b, h) starts at base + b·batch + h·head + r·row.
struct HeadView {
  const float* base;
  int64_t batch, head, row;
  const float* at(int64_t b, int64_t h) const { return base + b * batch + h * head; }
};

struct Plan {
  const AttentionArgs* args;
  HeadView k, v;         // k rows: head_dim contiguous floats; v rows: dp contiguous floats
  int64_t dp;            // head_dim rounded up to the vector width (v rows, output tile rows)
  int64_t block_q, block_k, ld_q;  // ld_q: block_q rounded up to kPad (Qᵀ and score tile rows)
  int64_t group;         // heads_q / heads_kv
  int64_t offset;        // seq_k - seq_q: query i sees keys j <= i + offset when causal
  int64_t first_row;     // rows before it see no key (causal with seq_q > seq_k)
  float q_scale;         // scale · log2(e)
};

struct WorkItem {
  int64_t b, h, row0;
};

// Per-thread scratch of one work item.
struct Scratch {
  float* qt;     // Qᵀ of the query block: head_dim x ld_q, scaled
  float* s;      // score / probability tile: block_k x ld_q
  float* o;      // unnormalised output rows: ld_q x dp
  float* m;      // running max per query (log2 units)
  float* l;      // running sum per query
  float* alpha;  // rescale factor of the current key block per query
};

// Keys a block of queries [row0, row1) can see: [0, key_end).
int64_t key_end(const Plan& p, int64_t row1) {
  return p.args->causal ? std::min(p.args->seq_k, row1 + p.offset) : p.args->seq_k;
}

// ---- the kernels of attention_kernels.inc, compiled per instruction-set level -----------------

#define ZHISUAN_PER_ISA_BODY "cpu/attention_kernels.inc"
#include "cpu/per_isa.h"

using ItemFn = void (*)(const Plan&, const Scratch&, const WorkItem&);

// ---- buffers ---------------------------------------------------------------------------------

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<float[], FreeDeleter>;

Buffer allocate(int64_t floats) {
  const size_t bytes = size_t(round_up(std::max<int64_t>(floats, 1) * 4, 64));
  auto* p = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (p == nullptr) throw std::bad_alloc();
  return Buffer(p);
}

void check_args(const AttentionArgs& a) {
  if (a.batch < 1 || a.heads_q < 1 || a.heads_kv < 1 || a.seq_q < 1 || a.seq_k < 1 || a.head_dim < 1)
    throw std::invalid_argument("attention: batch, heads, seq_q, seq_k and head_dim must all be >= 1");
  if (a.heads_q % a.heads_kv != 0)
    throw std::invalid_argument("attention: heads_q (" + std::to_string(a.heads_q) +
                                ") must be a multiple of heads_kv (" + std::to_string(a.heads_kv) + ")");
  if (a.q == nullptr || a.k == nullptr || a.v == nullptr || a.o == nullptr)
    throw std::invalid_argument("attention: q, k, v and o must be non-null addresses");
  if (a.block_q < 0 || a.block_k < 0) throw std::invalid_argument("attention: block sizes must be >= 0");
}

}  // namespace

std::string attention_forward_f32(const AttentionArgs& a, const std::string& isa) {
  check_args(a);
  const Isa level = select_isa(isa, "attention");
  const ItemFn process_item = pick(level, &avx512::process_item, &avx2::process_item, &portable::process_item);
  const int64_t width = pick(level, avx512::kWidth, avx2::kWidth, portable::kWidth);

  Plan p{};
  p.args = &a;
  p.block_q = a.block_q > 0 ? a.block_q : 64;
  p.block_k = a.block_k > 0 ? a.block_k : 128;
  p.ld_q = round_up(p.block_q, kPad);
  p.group = a.heads_q / a.heads_kv;
  p.offset = a.seq_k - a.seq_q;
  p.first_row = a.causal ? std::max<int64_t>(0, -p.offset) : 0;
  p.q_scale = a.scale * kLog2e;
  const int64_t dim = a.head_dim;
  p.dp = round_up(dim, width);

  // K is read in place when its rows are contiguous, V when its rows are also whole vectors;
  // otherwise they are packed once, shared by every query head of the group.
  const int64_t heads = a.batch * a.heads_kv;
  const bool pack_k = a.k_stride[3] != 1;
  const bool pack_v = a.v_stride[3] != 1 || p.dp != dim;
  Buffer k_packed = pack_k ? allocate(heads * a.seq_k * dim) : nullptr;
  Buffer v_packed = pack_v ? allocate(heads * a.seq_k * p.dp) : nullptr;
  p.k = pack_k ? HeadView{k_packed.get(), a.heads_kv * a.seq_k * dim, a.seq_k * dim, dim}
               : HeadView{a.k, a.k_stride[0], a.k_stride[1], a.k_stride[2]};
  p.v = pack_v ? HeadView{v_packed.get(), a.heads_kv * a.seq_k * p.dp, a.seq_k * p.dp, p.dp}
               : HeadView{a.v, a.v_stride[0], a.v_stride[1], a.v_stride[2]};

  // Work items head by head, so that consecutive items (and the threads working side by side)
  // share K and V in cache. Causal items go longest first within a head: the queue then ends with
  // the shortest items, which even out the threads' finishing times under dynamic scheduling.
  // (Sorting all items by length instead would lose that sharing.)
  std::vector<WorkItem> items;
  const int64_t q_blocks = (a.seq_q - p.first_row + p.block_q - 1) / p.block_q;
  for (int64_t b = 0; b < a.batch; ++b)
    for (int64_t h = 0; h < a.heads_q; ++h)
      for (int64_t i = 0; i < q_blocks; ++i)
        items.push_back({b, h, p.first_row + (a.causal ? q_blocks - 1 - i : i) * p.block_q});
  const int64_t n_items = int64_t(items.size());
  const int64_t pack_rows = heads * a.seq_k;

#pragma omp parallel
  {
    if (pack_k || pack_v) {
#pragma omp for schedule(static)
      for (int64_t row = 0; row < pack_rows; ++row) {
        const int64_t b = row / (a.heads_kv * a.seq_k), h = row / a.seq_k % a.heads_kv, j = row % a.seq_k;
        if (pack_k) {
          const float* src = a.k + b * a.k_stride[0] + h * a.k_stride[1] + j * a.k_stride[2];
          float* dst = k_packed.get() + row * dim;
          for (int64_t d = 0; d < dim; ++d) dst[d] = src[d * a.k_stride[3]];
        }
        if (pack_v) {
          const float* src = a.v + b * a.v_stride[0] + h * a.v_stride[1] + j * a.v_stride[2];
          float* dst = v_packed.get() + row * p.dp;
          for (int64_t d = 0; d < dim; ++d) dst[d] = src[d * a.v_stride[3]];
          std::fill(dst + dim, dst + p.dp, 0.0f);
        }
      }
    }

    Buffer qt = allocate(dim * p.ld_q), s = allocate(p.block_k * p.ld_q), o = allocate(p.ld_q * p.dp);
    Buffer stats = allocate(3 * p.ld_q);
    const Scratch scratch{qt.get(), s.get(), o.get(), stats.get(), stats.get() + p.ld_q, stats.get() + 2 * p.ld_q};
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < n_items; ++i) process_item(p, scratch, items[size_t(i)]);

    // Rows that see no key (causal, seq_q > seq_k): output 0, log-sum-exp -inf.
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < a.batch * a.heads_q; ++bh) {
      std::fill(a.o + bh * a.seq_q * dim, a.o + (bh * a.seq_q + p.first_row) * dim, 0.0f);
      if (a.lse != nullptr) std::fill(a.lse + bh * a.seq_q, a.lse + bh * a.seq_q + p.first_row, kNegInf);
    }
  }
  return isa_name(level);
}

}  // namespace zhisuan::cpu
