// cpu_gemm.h: the CPU backend's entry points (cpu_gemm.cpp).
//
// All take validated sizes and raw C-contiguous float32 pointers, write every output element (no
// need to zero it first), and may be called with the GIL released. Batch entries and groups run
// as one parallel loop of tiles.
#ifndef APPROXSIM_CPU_GEMM_H_
#define APPROXSIM_CPU_GEMM_H_

#include <cstdint>

#include "cpu_operands.h"
#include "cpu_table.h"

namespace approxsim {

// c[q] = op(a[a_index[q]]) (*) op(b[b_index[q]]) for q < batch: a entries of a_size floats, (M, K)
// or with ta (K, M); b entries of b_size floats, (K, N) or with tb (N, K); c (batch, M, N).
void matmul_batched(const float* a, const float* b, float* c, const int64_t* a_index, const int64_t* b_index,
                    int64_t batch, int64_t a_size, int64_t b_size, int64_t m, int64_t n, int64_t k, bool ta, bool tb,
                    const Table& t, int threads);

void conv2d_forward(const float* x, const float* w, float* y, const Geom& g, const Table& t, int threads);
void conv2d_input_grad(const float* dy, const float* w, float* dx, const Geom& g, const Table& t, int threads);
// The input gradient's decomposition, forced for tests: -1 chooses (by columns for few input channels
// per group, cpu_gemm.cpp), 0 the patch GEMM, 1 by columns wherever it can (two taps or more).
void force_input_grad(int mode);
void conv2d_filter_grad(const float* x, const float* dy, float* dw, const Geom& g, const Table& t, int threads);

}  // namespace approxsim

#endif  // APPROXSIM_CPU_GEMM_H_
