// cpu_gemm.h: the threaded, packed GEMM driver and the convolutions built on it.
//
// All entry points take validated sizes and raw C-contiguous float32 pointers,
// write every output element (no need to zero it first), and may be called with
// the GIL released.
#ifndef APPROXSIM_CPU_GEMM_H_
#define APPROXSIM_CPU_GEMM_H_

#include <cstdint>

#include "cpu_kernels.h"
#include "geometry.h"

namespace approxsim {

// c[M, N] = a[M, K] (*) b[K, N], where a[r][k] = a[r*a_rs + k*a_ks] and
// b[k][n] = b[k*b_ks + n*b_ns] (so transposes need no copy).
void gemm_strided(const float* a, int64_t a_rs, int64_t a_ks, const float* b, int64_t b_ks, int64_t b_ns,
                  float* c, int64_t m, int64_t n, int64_t k, const Table& t, int threads);

// Convolution geometry: the struct of geometry.h (approxsim.geometry.ConvGeometry's fields).
using Geom = approxsim_geometry;
inline int64_t cin_per_group(const Geom& g) { return g.c / g.groups; }
inline int64_t cout_per_group(const Geom& g) { return g.cout / g.groups; }

void conv2d_forward(const float* x, const float* w, float* y, const Geom& g, const Table& t, int threads);
void conv2d_input_grad(const float* dy, const float* w, float* dx, const Geom& g, const Table& t, int threads);
void conv2d_filter_grad(const float* x, const float* dy, float* dw, const Geom& g, const Table& t, int threads);

}  // namespace approxsim

#endif  // APPROXSIM_CPU_GEMM_H_
