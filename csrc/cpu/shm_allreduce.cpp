// Shared-memory all-reduce: the segment, its barriers, the one-shot and two-shot algorithms and the
// vectorised reductions. See shm_allreduce.h for the design.
#include "cpu/shm_allreduce.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstring>
#include <new>
#include <stdexcept>
#include <type_traits>

#include "cpu/simd.h"

namespace zhisuan::shm {

using cpu::BFloat;
using cpu::Half;
using cpu::Isa;

// ---- reductions ----------------------------------------------------------------------------------

namespace {

// max/min propagate NaN from either side, as torch does.
template <ReduceOp OP>
inline float combine_one(float a, float b) {
  if constexpr (OP == ReduceOp::max) return (a > b || a != a) ? a : b;
  if constexpr (OP == ReduceOp::min) return (a < b || a != a) ? a : b;
  return a + b;
}
template <ReduceOp OP>
inline int32_t combine_one(int32_t a, int32_t b) {
  if constexpr (OP == ReduceOp::max) return std::max(a, b);
  if constexpr (OP == ReduceOp::min) return std::min(a, b);
  // Sums wrap around on overflow (two's complement), like torch's integer all_reduce.
  return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
}

// Elements [begin, end) one at a time: the tails of the vector loops.
template <ReduceOp OP, typename T>
void reduce_tail(const T* const* src, int nsrc, T* dst, size_t begin, size_t end, float divisor) {
  for (size_t i = begin; i < end; ++i) {
    if constexpr (std::is_same_v<T, int32_t>) {
      int32_t acc = src[0][i];
      for (int k = 1; k < nsrc; ++k) acc = combine_one<OP>(acc, src[k][i]);
      dst[i] = acc;
    } else {
      float acc = cpu::to_float(src[0][i]);
      for (int k = 1; k < nsrc; ++k) acc = combine_one<OP>(acc, cpu::to_float(src[k][i]));
      if constexpr (OP == ReduceOp::avg) acc /= divisor;
      cpu::store_float(dst + i, acc);
    }
  }
}

#define ZHISUAN_PER_ISA_BODY "cpu/shm_reduce.inc"
#include "cpu/per_isa.h"

template <ReduceOp OP, typename T>
void reduce_with(Isa isa, const T* const* src, int nsrc, T* dst, size_t count, float divisor) {
  pick(isa, &avx512::reduce_span<OP, T>, &avx2::reduce_span<OP, T>, &portable::reduce_span<OP, T>)(
      src, nsrc, dst, count, divisor);
}

template <typename T>
void reduce_typed(Isa isa, ReduceOp op, const std::vector<const void*>& srcs, void* dst_raw, size_t count) {
  const auto* src = reinterpret_cast<const T* const*>(srcs.data());
  const int nsrc = static_cast<int>(srcs.size());
  T* dst = static_cast<T*>(dst_raw);
  const float divisor = static_cast<float>(nsrc);
  switch (op) {
    case ReduceOp::sum:
      return reduce_with<ReduceOp::sum>(isa, src, nsrc, dst, count, divisor);
    case ReduceOp::max:
      return reduce_with<ReduceOp::max>(isa, src, nsrc, dst, count, divisor);
    case ReduceOp::min:
      return reduce_with<ReduceOp::min>(isa, src, nsrc, dst, count, divisor);
    case ReduceOp::avg:
      if constexpr (std::is_same_v<T, int32_t>) {
        // Integer average: the (wrapping) sum, then floor division, as torch's floor_divide.
        // A double holds every int32 exactly and floor(s / n) is exact for n < 2^21.
        reduce_with<ReduceOp::sum>(isa, src, nsrc, dst, count, divisor);
        for (size_t i = 0; i < count; ++i)
          dst[i] = static_cast<int32_t>(std::floor(static_cast<double>(dst[i]) / nsrc));
      } else {
        reduce_with<ReduceOp::avg>(isa, src, nsrc, dst, count, divisor);
      }
      return;
  }
}

void check_members(DType dtype, ReduceOp op, const char* who) {
  if (!is_member(dtype))
    throw std::invalid_argument(std::string(who) + ": unknown dtype " + std::to_string(static_cast<int>(dtype)));
  if (!is_member(op))
    throw std::invalid_argument(std::string(who) + ": unknown op " + std::to_string(static_cast<int>(op)));
}

}  // namespace

void reduce(Isa isa, DType dtype, ReduceOp op, const std::vector<const void*>& srcs, void* dst, size_t count) {
  check_members(dtype, op, "shm reduce");
  if (srcs.empty()) throw std::invalid_argument("shm reduce: no source buffers");
  if (count == 0) return;
  switch (dtype) {
    case DType::fp32:
      return reduce_typed<float>(isa, op, srcs, dst, count);
    case DType::fp16:
      return reduce_typed<Half>(isa, op, srcs, dst, count);
    case DType::bf16:
      return reduce_typed<BFloat>(isa, op, srcs, dst, count);
    case DType::int32:
      return reduce_typed<int32_t>(isa, op, srcs, dst, count);
  }
}

// ---- the segment ---------------------------------------------------------------------------------

namespace {
constexpr uint64_t kMagic = 0x316e617573696877ull;  // "zhisuan1" read as little-endian bytes
constexpr uint32_t kVersion = 1;
constexpr size_t kLine = 128;  // two cache lines: no false sharing even with adjacent-line prefetch
constexpr size_t kPage = 4096;
constexpr int kMaxWorld = 1024;
constexpr size_t kSliceAlign = 64;  // two-shot slices start on cache-line boundaries

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

inline void cpu_relax() {
#ifdef ZHISUAN_X86
  _mm_pause();
#endif
}
}  // namespace

struct SegmentHeader {
  uint64_t magic;
  uint32_t version;
  int32_t world;
  uint64_t slot_bytes;
  uint64_t total_bytes;
  std::atomic<int32_t> opened;  // ranks that have mapped the segment
};

struct Descriptor {
  uint64_t count;
  int32_t dtype;
  int32_t op;
};

struct alignas(kLine) RankLine {
  std::atomic<uint64_t> arrived;  // barriers this rank has reached
  std::atomic<uint32_t> futex;    // the low 32 bits of `arrived`: what sleeping waiters watch
  std::atomic<uint32_t> sleepers;  // ranks asleep on `futex`, so the arriving rank knows to wake them
  std::atomic<int32_t> cpu;        // the CPU this rank last arrived from
  // The call each rank is in, by call parity: a rank may start call c+1 while another still reads
  // the descriptors of call c, but never call c+2 (call c+1 has a barrier of its own).
  Descriptor call[2];
};

static_assert(sizeof(SegmentHeader) <= kLine, "the header fits one line");
static_assert(sizeof(RankLine) == kLine, "one control line per rank");
static_assert(std::atomic<uint64_t>::is_always_lock_free, "lock-free atomics are address-free");
static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "a futex word is a plain 32-bit word");

namespace {
// Sleep while *word == expected, at most `seconds` (a process-shared futex: no FUTEX_PRIVATE_FLAG).
void futex_wait(std::atomic<uint32_t>* word, uint32_t expected, double seconds) {
  timespec ts{static_cast<time_t>(seconds), static_cast<long>((seconds - std::floor(seconds)) * 1e9)};
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}
void futex_wake_all(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}
}  // namespace

ShmAllReduce::ShmAllReduce(const std::string& name, int rank, int world, bool create, size_t slot_bytes,
                           size_t one_shot_max_bytes, double timeout_s)
    : name_(name),
      rank_(rank),
      world_(world),
      slot_bytes_(round_up(slot_bytes, kPage)),
      one_shot_max_bytes_(one_shot_max_bytes),
      timeout_s_(timeout_s),
      isa_(cpu::widest_isa()),
      srcs_(static_cast<size_t>(std::max(world, 1))) {
  if (world < 1 || world > kMaxWorld)
    throw std::invalid_argument("shm all_reduce: world size must be in [1, " + std::to_string(kMaxWorld) +
                                "], got " + std::to_string(world));
  if (rank < 0 || rank >= world)
    throw std::invalid_argument("shm all_reduce: rank " + std::to_string(rank) + " outside [0, " +
                                std::to_string(world) + ")");
  if (slot_bytes == 0) throw std::invalid_argument("shm all_reduce: slot_bytes must be positive");
  if (name.size() < 2 || name[0] != '/' || name.find('/', 1) != std::string::npos || name.size() > 200)
    throw std::invalid_argument("shm all_reduce: segment name must be '/name' without further '/', got '" +
                                name + "'");
  if (!(timeout_s > 0)) throw std::invalid_argument("shm all_reduce: timeout must be positive");

  const size_t data_offset = round_up(kLine * (1 + static_cast<size_t>(world)), kPage);
  total_bytes_ = data_offset + 2 * static_cast<size_t>(world) * slot_bytes_;

  const int fd = create ? shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600)
                        : shm_open(name.c_str(), O_RDWR, 0);
  if (fd < 0) throw std::runtime_error(errno_text("shm all_reduce: shm_open('" + name + "')"));
  if (create && ftruncate(fd, static_cast<off_t>(total_bytes_)) != 0) {
    const std::string why = errno_text("shm all_reduce: sizing '" + name + "' to " +
                                       std::to_string(total_bytes_) + " bytes (is /dev/shm full?)");
    ::close(fd);
    shm_unlink(name.c_str());
    throw std::runtime_error(why);
  }
  struct stat st {};
  if (!create && (fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) != total_bytes_)) {
    ::close(fd);
    throw std::runtime_error("shm all_reduce: segment '" + name + "' has " + std::to_string(st.st_size) +
                             " bytes, rank " + std::to_string(rank) + " expects " +
                             std::to_string(total_bytes_) + " (ranks disagree on world size or slot size)");
  }
  // MAP_POPULATE: fault every page in now, not inside the first timed calls.
  void* base = mmap(nullptr, total_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  ::close(fd);
  if (base == MAP_FAILED) {
    const std::string why = errno_text("shm all_reduce: mmap of '" + name + "'");
    if (create) shm_unlink(name.c_str());
    throw std::runtime_error(why);
  }
  base_ = static_cast<char*>(base);
  header_ = reinterpret_cast<SegmentHeader*>(base_);
  lines_ = reinterpret_cast<RankLine*>(base_ + kLine);
  data_ = base_ + data_offset;

  if (create) {
    new (header_) SegmentHeader{kMagic, kVersion, world, slot_bytes_, total_bytes_, {0}};
    for (int r = 0; r < world; ++r) new (&lines_[r]) RankLine{};
  } else if (header_->magic != kMagic || header_->version != kVersion || header_->world != world ||
             header_->slot_bytes != slot_bytes_) {
    close();
    throw std::runtime_error("shm all_reduce: segment '" + name +
                             "' was made for another world size, slot size or version");
  }
  header_->opened.fetch_add(1, std::memory_order_acq_rel);
}

ShmAllReduce::~ShmAllReduce() { close(); }

void ShmAllReduce::close() {
  if (base_ != nullptr) {
    munmap(base_, total_bytes_);
    base_ = nullptr;
    header_ = nullptr;
    lines_ = nullptr;
    data_ = nullptr;
  }
  if (rank_ == 0 && !unlinked_) {
    shm_unlink(name_.c_str());  // ENOENT is fine: nothing left behind either way
    unlinked_ = true;
  }
}

void ShmAllReduce::require_open() const {
  if (base_ == nullptr) throw std::runtime_error("shm all_reduce: communicator '" + name_ + "' is closed");
  if (broken_)
    throw std::runtime_error("shm all_reduce: communicator '" + name_ +
                             "' is unusable after an earlier timeout or mismatch; build a new one");
}

void ShmAllReduce::set_timeout(double seconds) {
  if (!(seconds > 0)) throw std::invalid_argument("shm all_reduce: timeout must be positive");
  timeout_s_ = seconds;
}

void ShmAllReduce::set_spin(double seconds) {
  if (!(seconds >= 0)) throw std::invalid_argument("shm all_reduce: spin time must not be negative");
  spin_ = std::chrono::nanoseconds(static_cast<int64_t>(seconds * 1e9));
}

void ShmAllReduce::set_isa(const std::string& name) { isa_ = cpu::select_isa(name, "shm all_reduce"); }

void ShmAllReduce::wait_opened_and_unlink() {
  if (unlinked_) return;
  if (base_ == nullptr) throw std::runtime_error("shm all_reduce: communicator '" + name_ + "' is closed");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s_);
  while (header_->opened.load(std::memory_order_acquire) < world_) {
    if (std::chrono::steady_clock::now() > deadline) {
      const int opened = header_->opened.load(std::memory_order_acquire);
      shm_unlink(name_.c_str());
      unlinked_ = true;
      broken_ = true;
      throw std::runtime_error("shm all_reduce: only " + std::to_string(opened) + " of " +
                               std::to_string(world_) + " ranks opened segment '" + name_ + "' within " +
                               std::to_string(timeout_s_) + " s");
    }
    sched_yield();
  }
  if (shm_unlink(name_.c_str()) != 0 && errno != ENOENT)
    throw std::runtime_error(errno_text("shm all_reduce: shm_unlink('" + name_ + "')"));
  unlinked_ = true;
}

char* ShmAllReduce::slot(int set, int rank) const {
  return data_ + (static_cast<size_t>(set) * world_ + rank) * slot_bytes_;
}

void ShmAllReduce::barrier(const char* where) {
  const uint64_t target = ++epoch_;
  RankLine& mine = lines_[rank_];
  // seq_cst on both sides (store arrived, then read sleepers here; count up sleepers, then read
  // arrived in wait_for) guarantees a rank that goes to sleep is either seen or sees the arrival.
  const int32_t here = sched_getcpu();
  mine.cpu.store(here, std::memory_order_relaxed);
  mine.arrived.store(target, std::memory_order_seq_cst);
  mine.futex.store(static_cast<uint32_t>(target), std::memory_order_seq_cst);
  if (mine.sleepers.load(std::memory_order_seq_cst) > 0) futex_wake_all(&mine.futex);
  const auto start = std::chrono::steady_clock::now();
  for (int k = 0; k < world_; ++k)
    if (k != rank_) wait_for(k, target, start, here, where);
}

void ShmAllReduce::wait_for(int k, uint64_t target, std::chrono::steady_clock::time_point start, int32_t here,
                            const char* where) {
  RankLine& line = lines_[k];
  // Spin first: a peer that is running arrives within microseconds. Not when the peer last ran on
  // our CPU: it cannot get anywhere while we spin there.
  if (line.cpu.load(std::memory_order_relaxed) != here) {
    unsigned polls = 0;
    while (line.arrived.load(std::memory_order_acquire) < target) {
      cpu_relax();
      if ((++polls & 63u) == 0 && std::chrono::steady_clock::now() - start > spin_) break;
    }
  }
  // Then sleep, so a peer waiting for a core (more processes than cores) can have ours.
  const auto timeout = std::chrono::duration<double>(timeout_s_);
  while (true) {
    const uint32_t seen = line.futex.load(std::memory_order_seq_cst);
    if (line.arrived.load(std::memory_order_seq_cst) >= target) return;
    const double left = std::chrono::duration<double>(timeout - (std::chrono::steady_clock::now() - start)).count();
    if (left <= 0) break;
    line.sleepers.fetch_add(1, std::memory_order_seq_cst);
    if (line.arrived.load(std::memory_order_seq_cst) < target) futex_wait(&line.futex, seen, std::min(left, 0.1));
    line.sleepers.fetch_sub(1, std::memory_order_seq_cst);
  }
  std::string missing;
  for (int j = 0; j < world_; ++j)
    if (lines_[j].arrived.load(std::memory_order_acquire) < target)
      missing += (missing.empty() ? "" : ", ") + std::to_string(j);
  broken_ = true;
  throw std::runtime_error("shm all_reduce: rank " + std::to_string(rank_) + " waited " +
                           std::to_string(timeout_s_) + " s at " + where + " for rank(s) " + missing +
                           ", which never arrived (dead, hung, or not calling all_reduce)");
}

namespace {
std::string describe(const Descriptor& d) {
  return "count=" + std::to_string(d.count) + " " + dtype_name(static_cast<DType>(d.dtype)) + " " +
         reduce_op_name(static_cast<ReduceOp>(d.op));
}
}  // namespace

void ShmAllReduce::check_descriptors(int parity) {
  const Descriptor& mine = lines_[rank_].call[parity];
  std::string differ;
  for (int k = 0; k < world_; ++k) {
    const Descriptor& d = lines_[k].call[parity];
    if (d.count != mine.count || d.dtype != mine.dtype || d.op != mine.op)
      differ += "; rank " + std::to_string(k) + " has " + describe(d);
  }
  if (!differ.empty()) {
    broken_ = true;
    throw std::runtime_error("shm all_reduce: ranks called with different arguments: rank " +
                             std::to_string(rank_) + " has " + describe(mine) + differ);
  }
}

void ShmAllReduce::chunk_one_shot(const char* in, char* out, size_t count, DType dtype, ReduceOp op, int check) {
  const int set = static_cast<int>(chunk_++ & 1);
  std::memcpy(slot(set, rank_), in, count * dtype_size(dtype));
  barrier("the one-shot exchange");
  if (check >= 0) check_descriptors(check);
  for (int k = 0; k < world_; ++k) srcs_[k] = k == rank_ ? in : slot(set, k);
  reduce(isa_, dtype, op, srcs_, out, count);
}

void ShmAllReduce::chunk_two_shot(const char* in, char* out, size_t count, DType dtype, ReduceOp op, int check) {
  const int set = static_cast<int>(chunk_++ & 1);
  const size_t esize = dtype_size(dtype);
  const size_t align = kSliceAlign / esize;
  const size_t per = round_up((count + world_ - 1) / world_, align);  // elements per slice
  auto begin = [&](int k) { return std::min(count, per * k); };
  auto length = [&](int k) { return begin(k + 1) - begin(k); };

  // 1. Publish the slices the other ranks reduce (our own slice we read from `in` directly).
  char* mine = slot(set, rank_);
  for (int k = 0; k < world_; ++k)
    if (k != rank_ && length(k) > 0) std::memcpy(mine + begin(k) * esize, in + begin(k) * esize, length(k) * esize);
  barrier("the two-shot reduce-scatter");
  if (check >= 0) check_descriptors(check);

  // 2. Reduce our slice over all ranks into our output, and publish it in our slot.
  const size_t off = begin(rank_) * esize;
  if (length(rank_) > 0) {
    for (int k = 0; k < world_; ++k) srcs_[k] = k == rank_ ? in + off : slot(set, k) + off;
    reduce(isa_, dtype, op, srcs_, out + off, length(rank_));
    std::memcpy(mine + off, out + off, length(rank_) * esize);
  }
  barrier("the two-shot all-gather");

  // 3. Collect the slices the other ranks reduced.
  for (int k = 0; k < world_; ++k)
    if (k != rank_ && length(k) > 0)
      std::memcpy(out + begin(k) * esize, slot(set, k) + begin(k) * esize, length(k) * esize);
}

void ShmAllReduce::all_reduce(uintptr_t in_addr, uintptr_t out_addr, size_t count, DType dtype, ReduceOp op) {
  check_members(dtype, op, "shm all_reduce");
  require_open();
  const size_t esize = dtype_size(dtype);
  if (count == 0) return;
  const int parity = static_cast<int>(calls_++ & 1);
  lines_[rank_].call[parity] = Descriptor{count, static_cast<int32_t>(dtype), static_cast<int32_t>(op)};
  const char* in = reinterpret_cast<const char*>(in_addr);
  char* out = reinterpret_cast<char*>(out_addr);
  if (world_ == 1) {
    if (out != in) std::memcpy(out, in, count * esize);
    return;
  }
  const size_t per_chunk = slot_bytes_ / esize;
  for (size_t done = 0; done < count; done += per_chunk) {
    const size_t n = std::min(per_chunk, count - done);
    const int check = done == 0 ? parity : -1;
    if (n * esize <= one_shot_max_bytes_)
      chunk_one_shot(in + done * esize, out + done * esize, n, dtype, op, check);
    else
      chunk_two_shot(in + done * esize, out + done * esize, n, dtype, op, check);
  }
}

}  // namespace zhisuan::shm
