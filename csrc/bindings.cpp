// kernels._C: the one pybind11 module of the CPU kernels.
//
// Thin by design: every kernel takes raw addresses (integers from tensor.data_ptr() or
// ndarray.ctypes.data), element strides and sizes, so the module does not link against PyTorch and
// works with any array library. Shapes and dtypes are checked in Python (kernels/<op>/__init__.py)
// before a call reaches here; each kernel releases the GIL while it runs.
//
// The shared vocabulary first (instruction-set levels, element types, reduction operations), then
// one section per kernel family; each section binds the functions declared in its header.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <string>

#include "cpu/attention.h"
#include "cpu/fma_probe.h"
#include "cpu/gemm.h"
#include "cpu/isa.h"
#include "cpu/shm_allreduce.h"
#include "dtypes.h"

namespace py = pybind11;

static py::dict build_info() {
  py::dict info;
  info["compiler"] = std::string(__VERSION__);
#ifdef _OPENMP
  info["openmp"] = _OPENMP;
#else
  info["openmp"] = py::none();
#endif
#ifdef __OPTIMIZE__
  info["optimized"] = true;
#else
  info["optimized"] = false;
#endif
  return info;
}

PYBIND11_MODULE(_C, m) {
  m.doc() = "zhisuan CPU kernels (C++, OpenMP, runtime-dispatched SIMD micro-kernels)";
  m.def("build_info", &build_info, "Compiler, OpenMP version and optimisation of this build.");

  // ---- shared vocabulary (csrc/cpu/isa.h, csrc/dtypes.h) ----
  m.def("isas", &zhisuan::cpu::supported_isa_names,
        "Instruction-set levels this CPU runs, widest first: a subset of avx512, avx2, portable.");
  {
    py::enum_<zhisuan::DType> dtype(m, "DType", "Element type of a buffer passed to a kernel.");
    for (const zhisuan::DTypeInfo& info : zhisuan::kDTypes) dtype.value(info.name, info.dtype);
    py::enum_<zhisuan::ReduceOp> op(m, "ReduceOp", "Reduction operation of an all-reduce.");
    for (const zhisuan::ReduceOpInfo& info : zhisuan::kReduceOps) op.value(info.name, info.op);
  }

  // ---- gemm (csrc/cpu/gemm.h) ----
  // C (m x n, row-major, leading dimension ldc) = A @ B; A and B as (address, row stride, column
  // stride) in elements, so transposed views need no copy. Addresses are tensor.data_ptr().
  {
    namespace cpu = zhisuan::cpu;
    const char* gemm_doc = "C = A @ B (m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c, ldc); strides in elements.";
    m.def(
        "gemm_f32",
        [](long m_, long n, long k, std::uintptr_t a, long a_rs, long a_cs, std::uintptr_t b, long b_rs,
           long b_cs, std::uintptr_t c, long ldc) {
          py::gil_scoped_release unlocked;
          cpu::gemm_f32(m_, n, k, reinterpret_cast<const float*>(a), a_rs, a_cs, reinterpret_cast<const float*>(b),
                        b_rs, b_cs, reinterpret_cast<float*>(c), ldc);
        },
        gemm_doc, py::arg("m"), py::arg("n"), py::arg("k"), py::arg("a"), py::arg("a_rs"), py::arg("a_cs"),
        py::arg("b"), py::arg("b_rs"), py::arg("b_cs"), py::arg("c"), py::arg("ldc"));
    m.def(
        "gemm_f64",
        [](long m_, long n, long k, std::uintptr_t a, long a_rs, long a_cs, std::uintptr_t b, long b_rs,
           long b_cs, std::uintptr_t c, long ldc) {
          py::gil_scoped_release unlocked;
          cpu::gemm_f64(m_, n, k, reinterpret_cast<const double*>(a), a_rs, a_cs,
                        reinterpret_cast<const double*>(b), b_rs, b_cs, reinterpret_cast<double*>(c), ldc);
        },
        gemm_doc, py::arg("m"), py::arg("n"), py::arg("k"), py::arg("a"), py::arg("a_rs"), py::arg("a_cs"),
        py::arg("b"), py::arg("b_rs"), py::arg("b_cs"), py::arg("c"), py::arg("ldc"));
    m.def("gemm_isa", &cpu::gemm_isa, "Instruction-set level of the gemm micro-kernels in use (one of isas()).");
    m.def("gemm_set_isa", &cpu::gemm_set_isa, py::arg("name"),
          "Force the gemm instruction-set level (one of isas()) or 'auto' for the widest.");
    m.def("gemm_set_threads", &cpu::gemm_set_threads, py::arg("n"),
          "Threads for gemm; 0 = OpenMP's default (all cores or OMP_NUM_THREADS).");
    m.def("gemm_threads", &cpu::gemm_threads, "Threads gemm uses now.");
  }

  // ---- attention (csrc/cpu/attention.h) ----
  // o (contiguous batch, heads_q, seq_q, head_dim) = softmax(q kᵀ · scale [+ causal mask]) v for fp32
  // q, k, v given as (address, element strides of batch, head, seq, dim); lse = 0 or the address of
  // a contiguous (batch, heads_q, seq_q) float32 buffer for the natural-log log-sum-exp.
  m.def(
      "attention_f32",
      [](std::uintptr_t q, std::uintptr_t k, std::uintptr_t v, std::uintptr_t o, std::uintptr_t lse,
         int64_t batch, int64_t heads_q, int64_t heads_kv, int64_t seq_q, int64_t seq_k, int64_t head_dim,
         const std::array<int64_t, 4>& q_strides, const std::array<int64_t, 4>& k_strides,
         const std::array<int64_t, 4>& v_strides, bool causal, float scale, const std::string& isa,
         int64_t block_q, int64_t block_k) {
        zhisuan::cpu::AttentionArgs args;
        args.q = reinterpret_cast<const float*>(q);
        args.k = reinterpret_cast<const float*>(k);
        args.v = reinterpret_cast<const float*>(v);
        args.o = reinterpret_cast<float*>(o);
        args.lse = reinterpret_cast<float*>(lse);
        args.batch = batch, args.heads_q = heads_q, args.heads_kv = heads_kv;
        args.seq_q = seq_q, args.seq_k = seq_k, args.head_dim = head_dim;
        for (int i = 0; i < 4; ++i) {
          args.q_stride[i] = q_strides[i], args.k_stride[i] = k_strides[i], args.v_stride[i] = v_strides[i];
        }
        args.causal = causal, args.scale = scale, args.block_q = block_q, args.block_k = block_k;
        py::gil_scoped_release unlocked;
        return zhisuan::cpu::attention_forward_f32(args, isa);
      },
      py::arg("q"), py::arg("k"), py::arg("v"), py::arg("o"), py::arg("lse"), py::arg("batch"), py::arg("heads_q"),
      py::arg("heads_kv"), py::arg("seq_q"), py::arg("seq_k"), py::arg("head_dim"), py::arg("q_strides"),
      py::arg("k_strides"), py::arg("v_strides"), py::arg("causal"), py::arg("scale"), py::arg("isa") = "auto",
      py::arg("block_q") = 0, py::arg("block_k") = 0,
      "Attention forward, fp32; returns the instruction-set level used (isa: auto or one of isas(); "
      "block sizes 0 = tuned default).");

  // ---- fma probe (csrc/cpu/fma_probe.h) ----
  m.def(
      "fma_probe",
      [](const std::string& dtype, int threads, double seconds, const std::string& isa, int windows) {
        zhisuan::cpu::FmaProbeResult r;
        {
          py::gil_scoped_release unlocked;
          r = zhisuan::cpu::fma_probe(dtype, threads, seconds, isa, windows);
        }
        py::dict out;
        out["flops_per_s"] = r.flops_per_s;
        out["wall_flops_per_s"] = r.wall_flops_per_s;
        out["cpu_share"] = r.cpu_share;
        out["seconds"] = r.seconds;
        out["threads"] = r.threads;
        out["isa"] = r.isa;
        out["dtype"] = r.dtype;
        return out;
      },
      py::arg("dtype") = "fp32", py::arg("threads") = 0, py::arg("seconds") = 0.2, py::arg("isa") = "auto",
      py::arg("windows") = 4,
      "Achievable peak FLOP/s from independent FMA chains (best of `windows` windows over `seconds`).");

  // ---- shared-memory all-reduce (csrc/cpu/shm_allreduce.h) ----
  {
    namespace shm = zhisuan::shm;
    m.def(
        "shm_reduce",
        [](const std::string& isa, zhisuan::DType dtype, zhisuan::ReduceOp op, const std::vector<uintptr_t>& srcs,
           uintptr_t dst, size_t count) {
          const zhisuan::cpu::Isa level = zhisuan::cpu::select_isa(isa, "shm_reduce");
          std::vector<const void*> ptrs(srcs.size());
          for (size_t i = 0; i < srcs.size(); ++i) ptrs[i] = reinterpret_cast<const void*>(srcs[i]);
          py::gil_scoped_release release;
          shm::reduce(level, dtype, op, ptrs, reinterpret_cast<void*>(dst), count);
        },
        py::arg("isa"), py::arg("dtype"), py::arg("op"), py::arg("srcs"), py::arg("dst"), py::arg("count"),
        "dst[i] = srcs[0][i] op srcs[1][i] ... with the shm all-reduce's kernel of that level (for tests).");
    py::class_<shm::ShmAllReduce>(m, "ShmAllReduce",
                                  "All-reduce among the processes of one host through POSIX shared memory.")
        .def(py::init<const std::string&, int, int, bool, size_t, size_t, double>(), py::arg("name"),
             py::arg("rank"), py::arg("world"), py::arg("create"), py::arg("slot_bytes"),
             py::arg("one_shot_max_bytes"), py::arg("timeout_s"))
        .def(
            "all_reduce",
            [](shm::ShmAllReduce& self, uintptr_t in, uintptr_t out, size_t count, zhisuan::DType dtype,
               zhisuan::ReduceOp op) {
              py::gil_scoped_release release;
              self.all_reduce(in, out, count, dtype, op);
            },
            py::arg("input"), py::arg("output"), py::arg("count"), py::arg("dtype"), py::arg("op"),
            "Reduce count elements at input (every rank) into output (may equal input).")
        .def("wait_opened_and_unlink", &shm::ShmAllReduce::wait_opened_and_unlink,
             py::call_guard<py::gil_scoped_release>(),
             "Rank 0: wait until every rank mapped the segment, then remove its name from /dev/shm.")
        .def("close", &shm::ShmAllReduce::close)
        .def_property_readonly("name", &shm::ShmAllReduce::name)
        .def_property_readonly("rank", &shm::ShmAllReduce::rank)
        .def_property_readonly("world", &shm::ShmAllReduce::world)
        .def_property_readonly("slot_bytes", &shm::ShmAllReduce::slot_bytes)
        .def_property_readonly("one_shot_max_bytes", &shm::ShmAllReduce::one_shot_max_bytes)
        .def_property_readonly("segment_bytes", &shm::ShmAllReduce::segment_bytes)
        .def_property("timeout", &shm::ShmAllReduce::timeout, &shm::ShmAllReduce::set_timeout)
        .def_property("spin", &shm::ShmAllReduce::spin, &shm::ShmAllReduce::set_spin,
                      "Seconds a wait spins before it sleeps on the futex.")
        .def_property("isa", &shm::ShmAllReduce::isa, &shm::ShmAllReduce::set_isa,
                      "Instruction-set level of the reduction kernel (one of isas(); 'auto' sets the widest).");
  }
}
