// kernels._cuda: the one pybind11 module of the CUDA kernels.
//
// Like kernels._C it takes raw device addresses, sizes, strides and a stream handle (an integer),
// so it works with torch, cupy and any __cuda_array_interface__ producer. A host without a GPU can
// import it: device_count() then reports the CUDA runtime's error instead of a number. The element
// types and reduction operations (csrc/dtypes.h) are bound once, by kernels._C: this module imports
// it and re-exports the same DType and ReduceOp objects.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <utility>

#include "cuda/ipc_allreduce.h"
#include "cuda/matmul.h"
#include "dtypes.h"

namespace py = pybind11;

// Number of visible CUDA devices, or raises RuntimeError with the runtime's reason.
static int device_count() {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) throw std::runtime_error(std::string("CUDA: ") + cudaGetErrorString(err));
  return n;
}

static py::dict build_info() {
  py::dict info;
  info["cuda_runtime_compiled"] = CUDART_VERSION;
  int runtime = 0;
  if (cudaRuntimeGetVersion(&runtime) == cudaSuccess) info["cuda_runtime"] = runtime;
  return info;
}

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "zhisuan CUDA kernels";
  m.def("device_count", &device_count, "Visible CUDA devices; raises with the runtime's reason.");
  m.def("build_info", &build_info, "CUDA runtime version compiled against and loaded.");
  {
    const py::module_ cpu = py::module_::import("zhisuan.kernels._C");
    m.attr("DType") = cpu.attr("DType");
    m.attr("ReduceOp") = cpu.attr("ReduceOp");
  }

  // ---- matmul (csrc/cuda/matmul.h) ----
  // gemm_f16 / gemm_bf16(m, n, k, a, a_stride_row, a_stride_col, b, b_stride_row, b_stride_col, c, ldc,
  // stream): device addresses, element strides, C row-major; launches on the stream and returns.
  for (const auto& entry :
       {std::pair{"gemm_f16", zhisuan::DType::fp16}, std::pair{"gemm_bf16", zhisuan::DType::bf16}}) {
    const zhisuan::DType dtype = entry.second;
    m.def(
        entry.first,
        [dtype](std::int64_t rows, std::int64_t cols, std::int64_t inner, std::uintptr_t a, std::int64_t sa0, std::int64_t sa1,
               std::uintptr_t b, std::int64_t sb0, std::int64_t sb1, std::uintptr_t c, std::int64_t ldc,
               std::uintptr_t stream) {
          py::gil_scoped_release release;
          zhisuan::gemm_tensor_core(dtype, rows, cols, inner, a, sa0, sa1, b, sb0, sb1, c, ldc,
                                    reinterpret_cast<cudaStream_t>(stream));
        },
        "C = A @ B on the tensor cores (mma.sync), fp32 accumulation; see csrc/cuda/matmul.h.");
  }
  m.def("gemm_operand_problem", &zhisuan::gemm_operand_problem, py::arg("ptr"), py::arg("rows"), py::arg("cols"),
        py::arg("stride_row"), py::arg("stride_col"), py::arg("element_size"),
        "Empty when the GEMM reads this operand in place, else why not (then pass an aligned copy).");

  // ---- ipc all-reduce (csrc/cuda/ipc_allreduce.h) ----
  // dtype: DType.fp32, .fp16 or .bf16; op: any ReduceOp.
  {
    namespace ipc = zhisuan::ipc;
    py::class_<ipc::IpcAllReduce>(m, "IpcAllReduce", "All-reduce among the processes of one node over CUDA IPC buffers.")
        .def(py::init<int, int, std::size_t, std::size_t, double>(), py::arg("rank"), py::arg("world"),
             py::arg("half_bytes"), py::arg("one_shot_max_bytes"), py::arg("timeout_s"))
        .def("handle", [](const ipc::IpcAllReduce& self) { return py::bytes(self.handle()); },
             "This rank's cudaIpcMemHandle_t, to send to the other ranks.")
        .def("open", &ipc::IpcAllReduce::open, py::arg("handles"), "Open every other rank's buffer (handles[k]: rank k's).")
        .def(
            "all_reduce",
            [](ipc::IpcAllReduce& self, std::uintptr_t in, std::uintptr_t out, std::size_t count,
               zhisuan::DType dtype, zhisuan::ReduceOp op, std::uintptr_t stream) {
              py::gil_scoped_release release;
              self.all_reduce(in, out, count, dtype, op, reinterpret_cast<cudaStream_t>(stream));
            },
            py::arg("input"), py::arg("output"), py::arg("count"), py::arg("dtype"), py::arg("op"), py::arg("stream"),
            "Enqueue the all-reduce on the stream (returns at once).")
        .def("close", &ipc::IpcAllReduce::close)
        .def_property_readonly("half_bytes", &ipc::IpcAllReduce::half_bytes)
        .def_property_readonly("one_shot_max_bytes", &ipc::IpcAllReduce::one_shot_max_bytes);
  }
}
