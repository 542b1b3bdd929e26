// approxsim._cpu: the C++ CPU backend (pybind11).
//
// This file holds the module definition and the elementwise product; the GEMM and
// convolution kernels live in their own translation units and register their
// bindings through the functions declared in bindings.h.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>

#include "approx_product.h"

namespace py = pybind11;

namespace {

using FArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

// Elementwise approximate product of two same-size float32 arrays.
py::array_t<float> multiply(const FArray& a, const FArray& b, const FArray& table, int m) {
  if (a.size() != b.size()) throw std::invalid_argument("multiply: a and b must have the same size");
  if (m < 1 || m > 11 || table.size() != (py::ssize_t(1) << (2 * m)))
    throw std::invalid_argument("multiply: table must hold 2^(2M) entries, M in 1..11");
  py::array_t<float> out(a.request().shape);
  const float* pa = a.data();
  const float* pb = b.data();
  const float* pt = table.data();
  float* po = out.mutable_data();
  const py::ssize_t n = a.size();
  {
    py::gil_scoped_release release;
    for (py::ssize_t k = 0; k < n; ++k) po[k] = approxsim_mul(pa[k], pb[k], pt, m);
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_cpu, mod) {
  mod.doc() = "approxsim C++ CPU backend";
  mod.def("multiply", &multiply, py::arg("a"), py::arg("b"), py::arg("table"), py::arg("mantissa_bits"),
          "Elementwise approximate product (DESIGN.md section 1) of same-size float32 arrays.");
}
