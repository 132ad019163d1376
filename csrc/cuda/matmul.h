// Tensor-core GEMM for fp16 and bf16 (csrc/cuda/matmul.cu): the readable reference kernel.
//
// C (M x N, row-major, leading dimension ldc) = A (M x K) @ B (K x N), products on the tensor
// cores (mma.sync m16n8k16), sums in fp32, C rounded once to the input type.
// A and B are given by element strides (stride_row, stride_col): each must have a unit stride on
// one side (row- or column-major, e.g. a transposed view) and 16-byte aligned rows and start, so
// tiles can be copied with 16-byte cp.async; operand_problem() says what is wrong otherwise (the
// Python layer then makes an aligned copy). Any M, N, K >= 1.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "dtypes.h"

namespace zhisuan {

// Empty when the kernel can read a rows x cols operand in place, else the reason.
std::string gemm_operand_problem(std::uintptr_t ptr, std::int64_t rows, std::int64_t cols, std::int64_t stride_row,
                                 std::int64_t stride_col, std::int64_t element_size);

// dtype fp16 or bf16. Launches on `stream` and returns at once; throws std::invalid_argument for bad
// arguments and std::runtime_error for a CUDA launch error.
void gemm_tensor_core(DType dtype, std::int64_t m, std::int64_t n, std::int64_t k, std::uintptr_t a,
                      std::int64_t a_stride_row, std::int64_t a_stride_col, std::uintptr_t b,
                      std::int64_t b_stride_row, std::int64_t b_stride_col, std::uintptr_t c, std::int64_t ldc,
                      cudaStream_t stream);

}  // namespace zhisuan
