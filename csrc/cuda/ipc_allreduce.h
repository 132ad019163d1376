// All-reduce among the processes of one node through CUDA IPC buffers (csrc/cuda/ipc_allreduce.cu).
// Checked on one H200 with 2-4 processes sharing it (tests/test_collectives_gpu.py, docs/benchmarks/h200.md);
// its speed needs several GPUs (on one, the processes' kernels time-slice).
//
// Each rank allocates one device buffer: a line of barrier flags (one 32-bit word per rank) and two
// data halves, used alternately by call parity. The IPC handles travel over the torch.distributed
// group (kernels/allreduce/ipc.py); each rank opens every other rank's buffer, so a kernel can read
// its peers' memory directly (NVLink or PCIe peer access between GPUs, or the same memory when the
// processes share one GPU).
//
// Barrier: a one-block kernel in which thread k stores the barrier's epoch into rank k's flag word
// for this rank (release, system scope), then waits until this rank's flag word for rank k holds
// that epoch (acquire, system scope). The work before and after it is ordered by the stream. A wait
// longer than the timeout traps the kernel (a CUDA error on the host), rather than hanging.
//
// one-shot (small messages): copy the input into our half; barrier; every rank reduces all ranks'
//   halves (in rank order, fp32 accumulation) into its output.
// two-shot (larger, up to one half): copy; barrier; rank r reduces slice r of every rank's half
//   into its output and into its own half; barrier; every rank copies the other reduced slices
//   from their owners' halves.
// A half is written again only two calls later, after every rank passed a barrier that it reaches
// only once it has finished reading it, so no closing barrier is needed. Messages larger than a
// half are the caller's to send elsewhere (NCCL).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dtypes.h"

namespace zhisuan::ipc {

constexpr int kMaxRanks = 16;

class IpcAllReduce {
 public:
  // Allocates this rank's buffer on the current device: data halves of half_bytes each.
  IpcAllReduce(int rank, int world, std::size_t half_bytes, std::size_t one_shot_max_bytes, double timeout_s);
  ~IpcAllReduce();
  IpcAllReduce(const IpcAllReduce&) = delete;
  IpcAllReduce& operator=(const IpcAllReduce&) = delete;

  // The cudaIpcMemHandle_t of this rank's buffer, as bytes to send to the others.
  std::string handle() const;
  // Open every other rank's buffer; handles[k] is rank k's handle (ours is skipped).
  void open(const std::vector<std::string>& handles);
  // Reduce count elements at in (every rank) into out (may equal in) on `stream`; returns at once.
  // dtype fp32, fp16 or bf16; count * element size must be at most half_bytes().
  void all_reduce(std::uintptr_t in, std::uintptr_t out, std::size_t count, DType dtype, ReduceOp op,
                  cudaStream_t stream);
  void close();

  std::size_t half_bytes() const { return half_bytes_; }
  std::size_t one_shot_max_bytes() const { return one_shot_max_bytes_; }
  int rank() const { return rank_; }
  int world() const { return world_; }

 private:
  void barrier(cudaStream_t stream);
  char* half(int rank, int parity) const;

  int rank_;
  int world_;
  std::size_t half_bytes_;
  std::size_t one_shot_max_bytes_;
  unsigned long long timeout_ns_;
  int device_ = -1;
  char* buffers_[kMaxRanks] = {};  // every rank's buffer as mapped here (ours: allocated)
  bool opened_ = false;
  std::uint32_t epoch_ = 0;  // barriers issued
  std::uint64_t calls_ = 0;
};

}  // namespace zhisuan::ipc
