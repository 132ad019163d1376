// All-reduce among the processes of one host through a POSIX shared-memory segment.
//
// Set-up (driven from Python, kernels/allreduce/shm.py): rank 0 creates a uniquely named segment and
// the name travels to the other ranks over the existing torch.distributed group; each rank maps it,
// and rank 0 unlinks the name as soon as every rank has mapped it, so a crash afterwards leaves
// nothing in /dev/shm (the memory goes when the last process unmaps it, at exit at the latest).
//
// Segment layout: a header, one 128-byte control line per rank (its barrier counter and the
// descriptor of the call it is in), then two sets of `world` slots of `slot_bytes` each. Calls use the
// two sets alternately, chunk by chunk: a slot is rewritten only two chunks later, after every rank
// has passed at least one barrier that it reaches only once it has finished reading that slot, so one
// barrier per chunk and phase is enough.
//
// Algorithms, per chunk of at most slot_bytes (so any message size goes through a bounded buffer):
//  one-shot (chunk <= one_shot_max_bytes): every rank copies its chunk into its slot; barrier; every
//    rank reduces all inputs (its own straight from its buffer) into its output.
//  two-shot (larger chunks): the chunk is cut into `world` slices; every rank copies the slices it
//    does not own into its slot; barrier; rank r reduces slice r over all ranks and writes it to its
//    output and its slot; barrier; every rank copies the other reduced slices into its output.
// Inputs are always combined in rank order 0..world-1 (fp16 and bf16 accumulate in fp32 and round
// once), so every rank ends with bit-identical results.
//
// Barriers: each rank publishes an increasing counter in its control line and waits until every
// other rank's counter reaches the same value: spinning with pause for up to 50 us (not when the
// other rank last ran on this CPU), then asleep on a futex in the segment (the arriving rank wakes
// the sleepers), so with more processes than cores a waiting rank hands its core to the one it
// waits for. A wait longer than the timeout throws,
// naming the ranks that did not arrive.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cpu/isa.h"
#include "dtypes.h"

namespace zhisuan::shm {

// dst[i] = srcs[0][i] op srcs[1][i] op ... (in order) with the reduction kernel of level `isa`
// (one this CPU runs); avg divides the sum by srcs.size() (floor division for int32). dst may alias
// any source. Addresses are raw element pointers.
void reduce(cpu::Isa isa, DType dtype, ReduceOp op, const std::vector<const void*>& srcs, void* dst,
            size_t count);

struct SegmentHeader;
struct RankLine;

class ShmAllReduce {
 public:
  // create: rank 0 makes the segment `name` (it must not exist); the other ranks open it.
  ShmAllReduce(const std::string& name, int rank, int world, bool create, size_t slot_bytes,
               size_t one_shot_max_bytes, double timeout_s);
  ~ShmAllReduce();
  ShmAllReduce(const ShmAllReduce&) = delete;
  ShmAllReduce& operator=(const ShmAllReduce&) = delete;

  // Rank 0: wait until every rank has mapped the segment, then remove its name. Idempotent.
  void wait_opened_and_unlink();
  // Reduce count elements of in (all ranks) into out; out may equal in.
  void all_reduce(uintptr_t in, uintptr_t out, size_t count, DType dtype, ReduceOp op);
  // Unmap (and, on rank 0, unlink if not yet done). Further calls raise.
  void close();

  const std::string& name() const { return name_; }
  int rank() const { return rank_; }
  int world() const { return world_; }
  size_t slot_bytes() const { return slot_bytes_; }
  size_t one_shot_max_bytes() const { return one_shot_max_bytes_; }
  size_t segment_bytes() const { return total_bytes_; }
  double timeout() const { return timeout_s_; }
  void set_timeout(double seconds);
  double spin() const { return std::chrono::duration<double>(spin_).count(); }
  void set_spin(double seconds);
  std::string isa() const { return cpu::isa_name(isa_); }
  void set_isa(const std::string& isa);

 private:
  char* slot(int set, int rank) const;
  void barrier(const char* where);
  void wait_for(int rank, uint64_t target, std::chrono::steady_clock::time_point start, int32_t here,
                const char* where);
  void check_descriptors(int parity);
  // check: the call parity whose descriptors to compare after the first barrier, or -1.
  void chunk_one_shot(const char* in, char* out, size_t count, DType dtype, ReduceOp op, int check);
  void chunk_two_shot(const char* in, char* out, size_t count, DType dtype, ReduceOp op, int check);
  void require_open() const;

  std::string name_;
  int rank_;
  int world_;
  size_t slot_bytes_;
  size_t one_shot_max_bytes_;
  double timeout_s_;
  std::chrono::nanoseconds spin_{50000};  // how long a wait spins before it sleeps
  cpu::Isa isa_;
  std::vector<const void*> srcs_;  // the reduction's sources, reused across calls
  size_t total_bytes_ = 0;
  char* base_ = nullptr;
  SegmentHeader* header_ = nullptr;
  RankLine* lines_ = nullptr;
  char* data_ = nullptr;
  uint64_t epoch_ = 0;  // barriers passed by this rank
  uint64_t chunk_ = 0;  // chunks processed: its parity picks the slot set
  uint64_t calls_ = 0;  // all_reduce calls made: its parity picks the descriptor
  bool unlinked_ = false;
  bool broken_ = false;  // a barrier timed out or the ranks disagreed: the segment is out of step
};

}  // namespace zhisuan::shm
