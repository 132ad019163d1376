// kernels._cuda: the one pybind11 module of the CUDA kernels.
//
// Like kernels._C it takes raw device addresses, sizes, strides and a stream handle (an integer),
// so it works with torch, cupy and any __cuda_array_interface__ producer. A host without a GPU can
// import it: device_count() then reports the CUDA runtime's error instead of a number.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include <string>

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

  // ---- matmul (csrc/cuda/matmul.h) ----

  // ---- ipc all-reduce (csrc/cuda/ipc_allreduce.h) ----
}
