// kernels._C: the one pybind11 module of the CPU kernels.
//
// Thin by design: every kernel takes raw addresses (integers from tensor.data_ptr() or
// ndarray.ctypes.data), element strides and sizes, so the module does not link against PyTorch and
// works with any array library. Shapes and dtypes are checked in Python (kernels/<op>/__init__.py)
// before a call reaches here; each kernel releases the GIL while it runs.
//
// One section per kernel family; each section binds the functions declared in its header.
#include <pybind11/pybind11.h>

#include <string>

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

  // ---- gemm (csrc/cpu/gemm.h) ----

  // ---- attention (csrc/cpu/attention.h) ----

  // ---- fma probe (csrc/cpu/fma_probe.h) ----

  // ---- shared-memory all-reduce (csrc/cpu/shm_allreduce.h) ----
}
