// CUDA IPC all-reduce: buffers, barrier kernel, reduction kernel. See ipc_allreduce.h.
// Correct on one H200 with 2-4 processes sharing it (docs/benchmarks/h200.md); speed unmeasured.
#include <cuda/atomic>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "cuda/ipc_allreduce.h"

namespace zhisuan::ipc {
namespace {

constexpr std::size_t kFlagBytes = 256;  // the flag line: kMaxRanks words, padded to keep halves aligned
constexpr std::size_t kSliceAlign = 64;  // two-shot slices start on 64-element boundaries
constexpr int kThreads = 256;
constexpr int kMaxBlocks = 1024;

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string("ipc all_reduce: ") + what + ": " + cudaGetErrorString(err));
}

struct Buffers {
  char* base[kMaxRanks];
};
struct Sources {
  const void* ptr[kMaxRanks];
};

__device__ __forceinline__ unsigned long long global_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// Thread k: tell rank k we arrived (its flag word for us), then wait for rank k (our word for it).
// Epochs only grow; the signed difference keeps the comparison right across 32-bit wrap-around.
__global__ void barrier_kernel(Buffers buffers, int rank, int world, std::uint32_t epoch,
                               unsigned long long timeout_ns) {
  const int k = threadIdx.x;
  if (k >= world) return;
  auto* theirs = reinterpret_cast<std::uint32_t*>(buffers.base[k]) + rank;
  cuda::atomic_ref<std::uint32_t, cuda::thread_scope_system>(*theirs).store(epoch, cuda::memory_order_release);
  auto* mine = reinterpret_cast<std::uint32_t*>(buffers.base[rank]) + k;
  cuda::atomic_ref<std::uint32_t, cuda::thread_scope_system> flag(*mine);
  const unsigned long long start = global_ns();
  while (static_cast<std::int32_t>(flag.load(cuda::memory_order_acquire) - epoch) < 0) {
    if (global_ns() - start > timeout_ns) __trap();  // a rank that never comes: an error, not a hang
    __nanosleep(256);
  }
}

template <typename T>
__device__ __forceinline__ float to_float(T v);
template <>
__device__ __forceinline__ float to_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ float to_float<__half>(__half v) {
  return __half2float(v);
}
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// max/min propagate NaN from either side, as torch does.
template <ReduceOp OP>
__device__ __forceinline__ float combine(float a, float b) {
  if constexpr (OP == ReduceOp::max) return (a > b || a != a) ? a : b;
  if constexpr (OP == ReduceOp::min) return (a < b || a != a) ? a : b;
  return a + b;
}

// out[i] (and copy[i], when given) = src[0][i] op ... op src[world-1][i], in rank order, in fp32.
template <typename T, ReduceOp OP>
__global__ void reduce_kernel(Sources src, int world, T* out, T* copy, std::size_t n, float divisor) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    float acc = to_float(static_cast<const T*>(src.ptr[0])[i]);
    for (int k = 1; k < world; ++k) acc = combine<OP>(acc, to_float(static_cast<const T*>(src.ptr[k])[i]));
    if constexpr (OP == ReduceOp::avg) acc = __fdiv_rn(acc, divisor);  // IEEE division even under fast math
    const T v = from_float<T>(acc);
    out[i] = v;
    if (copy != nullptr) copy[i] = v;
  }
}

template <typename T>
void launch_reduce(ReduceOp op, const Sources& src, int world, void* out, void* copy, std::size_t n,
                   cudaStream_t stream) {
  const int blocks = static_cast<int>(std::min<std::size_t>((n + kThreads - 1) / kThreads, kMaxBlocks));
  T* o = static_cast<T*>(out);
  T* c = static_cast<T*>(copy);
  const float d = static_cast<float>(world);
  switch (op) {
    case ReduceOp::sum:
      reduce_kernel<T, ReduceOp::sum><<<blocks, kThreads, 0, stream>>>(src, world, o, c, n, d);
      break;
    case ReduceOp::max:
      reduce_kernel<T, ReduceOp::max><<<blocks, kThreads, 0, stream>>>(src, world, o, c, n, d);
      break;
    case ReduceOp::min:
      reduce_kernel<T, ReduceOp::min><<<blocks, kThreads, 0, stream>>>(src, world, o, c, n, d);
      break;
    case ReduceOp::avg:
      reduce_kernel<T, ReduceOp::avg><<<blocks, kThreads, 0, stream>>>(src, world, o, c, n, d);
      break;
  }
}

void reduce(DType dtype, ReduceOp op, const Sources& src, int world, void* out, void* copy, std::size_t n,
            cudaStream_t stream) {
  switch (dtype) {
    case DType::fp32:
      return launch_reduce<float>(op, src, world, out, copy, n, stream);
    case DType::fp16:
      return launch_reduce<__half>(op, src, world, out, copy, n, stream);
    case DType::bf16:
      return launch_reduce<__nv_bfloat16>(op, src, world, out, copy, n, stream);
    case DType::int32:  // refused by IpcAllReduce::all_reduce
      break;
  }
}

}  // namespace

IpcAllReduce::IpcAllReduce(int rank, int world, std::size_t half_bytes, std::size_t one_shot_max_bytes,
                           double timeout_s)
    : rank_(rank),
      world_(world),
      half_bytes_((half_bytes + 255) / 256 * 256),
      one_shot_max_bytes_(one_shot_max_bytes),
      timeout_ns_(static_cast<unsigned long long>(timeout_s * 1e9)) {
  if (world < 1 || world > kMaxRanks)
    throw std::invalid_argument("ipc all_reduce: world size must be in [1, " + std::to_string(kMaxRanks) + "]");
  if (rank < 0 || rank >= world) throw std::invalid_argument("ipc all_reduce: rank outside [0, world)");
  if (half_bytes == 0 || !(timeout_s > 0))
    throw std::invalid_argument("ipc all_reduce: half_bytes and timeout must be positive");
  check(cudaGetDevice(&device_), "cudaGetDevice");
  void* mine = nullptr;
  check(cudaMalloc(&mine, kFlagBytes + 2 * half_bytes_), "cudaMalloc");
  buffers_[rank_] = static_cast<char*>(mine);
  check(cudaMemset(mine, 0, kFlagBytes), "cudaMemset");
  check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

IpcAllReduce::~IpcAllReduce() {
  try {
    close();
  } catch (...) {  // a destructor must not throw; the process is ending or the context is gone
  }
}

std::string IpcAllReduce::handle() const {
  if (buffers_[rank_] == nullptr) throw std::runtime_error("ipc all_reduce: closed");
  cudaIpcMemHandle_t h;
  check(cudaIpcGetMemHandle(&h, buffers_[rank_]), "cudaIpcGetMemHandle");
  return std::string(reinterpret_cast<const char*>(&h), sizeof(h));
}

void IpcAllReduce::open(const std::vector<std::string>& handles) {
  if (static_cast<int>(handles.size()) != world_)
    throw std::invalid_argument("ipc all_reduce: expected " + std::to_string(world_) + " handles");
  check(cudaSetDevice(device_), "cudaSetDevice");
  for (int k = 0; k < world_; ++k) {
    if (k == rank_) continue;
    if (handles[k].size() != sizeof(cudaIpcMemHandle_t))
      throw std::invalid_argument("ipc all_reduce: rank " + std::to_string(k) + "'s handle has the wrong size");
    cudaIpcMemHandle_t h;
    std::memcpy(&h, handles[k].data(), sizeof(h));
    void* peer = nullptr;
    check(cudaIpcOpenMemHandle(&peer, h, cudaIpcMemLazyEnablePeerAccess), "cudaIpcOpenMemHandle");
    buffers_[k] = static_cast<char*>(peer);
  }
  opened_ = true;
}

void IpcAllReduce::close() {
  if (buffers_[rank_] == nullptr) return;
  for (int k = 0; k < world_; ++k)
    if (k != rank_ && buffers_[k] != nullptr) cudaIpcCloseMemHandle(buffers_[k]);
  cudaFree(buffers_[rank_]);
  std::fill(std::begin(buffers_), std::end(buffers_), nullptr);
  opened_ = false;
}

char* IpcAllReduce::half(int rank, int parity) const {
  return buffers_[rank] + kFlagBytes + static_cast<std::size_t>(parity) * half_bytes_;
}

void IpcAllReduce::barrier(cudaStream_t stream) {
  Buffers b;
  std::copy(std::begin(buffers_), std::end(buffers_), b.base);
  barrier_kernel<<<1, 32 * ((world_ + 31) / 32), 0, stream>>>(b, rank_, world_, ++epoch_, timeout_ns_);
}

void IpcAllReduce::all_reduce(std::uintptr_t in_addr, std::uintptr_t out_addr, std::size_t count, DType dtype,
                              ReduceOp op, cudaStream_t stream) {
  if (!opened_) throw std::runtime_error("ipc all_reduce: the peers' buffers are not open (call open())");
  if (dtype != DType::fp32 && dtype != DType::fp16 && dtype != DType::bf16)
    throw std::invalid_argument(std::string("ipc all_reduce: dtype ") + dtype_name(dtype) +
                                " not supported (fp32, fp16, bf16)");
  if (!is_member(op)) throw std::invalid_argument("ipc all_reduce: unknown op");
  const std::size_t esize = dtype_size(dtype);
  const std::size_t bytes = count * esize;
  if (bytes > half_bytes_)
    throw std::invalid_argument("ipc all_reduce: " + std::to_string(bytes) + " bytes exceed the buffer half of " +
                                std::to_string(half_bytes_));
  if (count == 0) return;
  check(cudaSetDevice(device_), "cudaSetDevice");
  const int parity = static_cast<int>(calls_++ & 1);
  const char* in = reinterpret_cast<const char*>(in_addr);
  char* out = reinterpret_cast<char*>(out_addr);
  char* mine = half(rank_, parity);
  check(cudaMemcpyAsync(mine, in, bytes, cudaMemcpyDefault, stream), "copy-in");
  barrier(stream);
  Sources src;
  if (bytes <= one_shot_max_bytes_) {
    for (int k = 0; k < world_; ++k) src.ptr[k] = half(k, parity);
    reduce(dtype, op, src, world_, out, nullptr, count, stream);
  } else {
    const std::size_t per = ((count + world_ - 1) / world_ + kSliceAlign - 1) / kSliceAlign * kSliceAlign;
    auto begin = [&](int k) { return std::min(count, per * k); };
    const std::size_t off = begin(rank_) * esize;
    const std::size_t len = begin(rank_ + 1) - begin(rank_);
    for (int k = 0; k < world_; ++k) src.ptr[k] = half(k, parity) + off;
    if (len > 0) reduce(dtype, op, src, world_, out + off, mine + off, len, stream);
    barrier(stream);
    for (int k = 0; k < world_; ++k) {
      const std::size_t n = begin(k + 1) - begin(k);
      if (k != rank_ && n > 0)
        check(cudaMemcpyAsync(out + begin(k) * esize, half(k, parity) + begin(k) * esize, n * esize,
                              cudaMemcpyDefault, stream),
              "gather");
    }
  }
  check(cudaGetLastError(), "launch");
}

}  // namespace zhisuan::ipc
