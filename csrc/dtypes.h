// Element types and reduction operations of the kernels, shared by the CPU and CUDA code.
//
// Python sees them as zhisuan.kernels._C.DType and zhisuan.kernels._C.ReduceOp (bound once, in
// csrc/bindings.cpp, with the names below; zhisuan.kernels._cuda re-exports the same objects), and
// passes members by name (DType.bf16, ReduceOp.sum): no numeric code crosses the binding.
#pragma once

#include <cstddef>

namespace zhisuan {

enum class DType { fp32, fp16, bf16, int32 };
enum class ReduceOp { sum, max, min, avg };

struct DTypeInfo {
  DType dtype;
  const char* name;
  std::size_t size;  // bytes per element
};
constexpr DTypeInfo kDTypes[] = {
    {DType::fp32, "fp32", 4}, {DType::fp16, "fp16", 2}, {DType::bf16, "bf16", 2}, {DType::int32, "int32", 4}};

struct ReduceOpInfo {
  ReduceOp op;
  const char* name;
};
constexpr ReduceOpInfo kReduceOps[] = {
    {ReduceOp::sum, "sum"}, {ReduceOp::max, "max"}, {ReduceOp::min, "min"}, {ReduceOp::avg, "avg"}};

// "?" for a value that is none of the members (read from memory another process wrote).
constexpr const char* dtype_name(DType dtype) {
  for (const DTypeInfo& info : kDTypes)
    if (info.dtype == dtype) return info.name;
  return "?";
}

// 0 for a value that is none of the members.
constexpr std::size_t dtype_size(DType dtype) {
  for (const DTypeInfo& info : kDTypes)
    if (info.dtype == dtype) return info.size;
  return 0;
}

constexpr const char* reduce_op_name(ReduceOp op) {
  for (const ReduceOpInfo& info : kReduceOps)
    if (info.op == op) return info.name;
  return "?";
}

// Whether a value is one of the members: Python can make others (DType(7)), so entry points check.
constexpr bool is_member(DType dtype) { return dtype_size(dtype) != 0; }
constexpr bool is_member(ReduceOp op) {
  for (const ReduceOpInfo& info : kReduceOps)
    if (info.op == op) return true;
  return false;
}

}  // namespace zhisuan
