// Attention forward, fp32, on the CPU: FlashAttention-style tiling with an online softmax.
//
// o = softmax(q kᵀ · scale [+ causal mask]) v for q (batch, heads_q, seq_q, head_dim) and k, v
// (batch, heads_kv, seq_k, head_dim); query head h reads kv head h / (heads_q / heads_kv). Causal
// masking is bottom-right aligned: query i sees keys j <= i + seq_k - seq_q, and a row that sees no
// key gets o = 0 and lse = -inf. The full seq_q x seq_k score matrix is never formed.
#pragma once

#include <cstdint>
#include <string>

namespace zhisuan::cpu {

struct AttentionArgs {
  const float* q = nullptr;  // element strides of (batch, head, seq, dim) in q_stride, etc.
  const float* k = nullptr;
  const float* v = nullptr;
  float* o = nullptr;    // contiguous (batch, heads_q, seq_q, head_dim)
  float* lse = nullptr;  // nullptr, or contiguous (batch, heads_q, seq_q): natural-log log-sum-exp
  int64_t batch = 0, heads_q = 0, heads_kv = 0, seq_q = 0, seq_k = 0, head_dim = 0;
  int64_t q_stride[4] = {0, 0, 0, 0};
  int64_t k_stride[4] = {0, 0, 0, 0};
  int64_t v_stride[4] = {0, 0, 0, 0};
  bool causal = false;
  float scale = 1.0f;
  // Tile sizes (queries per work item, keys per inner step); 0 picks the tuned default.
  int64_t block_q = 0;
  int64_t block_k = 0;
};

// Runs the forward pass with the named instruction-set level ("auto": the widest the CPU runs;
// isa.h) and returns the name of the level used. Throws std::invalid_argument for bad sizes or an
// unknown or unsupported level. Validates nothing about the memory behind the addresses.
std::string attention_forward_f32(const AttentionArgs& args, const std::string& isa);

}  // namespace zhisuan::cpu
