/*
 * direct_cuda.h: CUDA kernels of approxsim's direct multipliers (model compiled in).
 *
 * approxsim.direct.cuda appends this file to the model's source (with local headers and
 * approxsim's own headers inlined) and APPROXSIM_DIRECT_FN defined to the model function, and
 * compiles the whole with NVRTC using -default-device (the model's unannotated functions become
 * __device__ functions) and --fmad=false (no fused multiply-adds: the products and sums are the
 * IEEE operations the source spells).
 *
 * One thread computes one output with the loops of direct_loops.h (a run of one column), in the
 * same order as the CPU kernels, so CPU and GPU results agree bit for bit.  Entry points
 * (extern "C", grid-stride loops over `items` outputs):
 *   approxsim_direct_multiply(a, b, out, count)
 *   approxsim_direct_matmul(a, b, c, items, m, k, n, a_batch_stride, b_batch_stride)   items = batch*m*n
 *   approxsim_direct_conv_fwd(x, w, y, items, geometry)       items = N*OH*OW*COUT
 *   approxsim_direct_conv_dgrad(dy, w_t, dx, items, geometry) items = N*H*W*C; w_t: w as (KH, KW, COUT, C/G)
 *   approxsim_direct_conv_wgrad(x, dy, dw, items, geometry)   items = KH*KW*(C/G)*COUT
 * with geometry the approxsim_geometry struct (geometry.h), by value.
 */
#ifndef APPROXSIM_DIRECT_CUDA_H_
#define APPROXSIM_DIRECT_CUDA_H_

#include "direct_loops.h"

#define APPROXSIM_DC_LOOP(i, items)                                                                            \
  for (approxsim_dl_i64 i = (approxsim_dl_i64)blockIdx.x * blockDim.x + threadIdx.x; i < (items);             \
       i += (approxsim_dl_i64)blockDim.x * gridDim.x)

extern "C" __global__ void approxsim_direct_multiply(const approxsim_dl_in* __restrict__ a, const approxsim_dl_in* __restrict__ b,
                                                     approxsim_dl_out* __restrict__ out, approxsim_dl_i64 count) {
  APPROXSIM_DC_LOOP(i, count) { out[i] = approxsim_dl_model(a[i], b[i]); }
}

extern "C" __global__ void approxsim_direct_matmul(const approxsim_dl_in* a, const approxsim_dl_in* b, approxsim_dl_out* c, approxsim_dl_i64 items,
                                                   approxsim_dl_i64 m, approxsim_dl_i64 k, approxsim_dl_i64 n,
                                                   approxsim_dl_i64 a_batch_stride, approxsim_dl_i64 b_batch_stride) {
  approxsim_dl_matmul_args p = {a, b, c, m, k, n, a_batch_stride, b_batch_stride};
  APPROXSIM_DC_LOOP(e, items) {
    approxsim_dl_out acc;
    approxsim_dl_matmul(&p, e / n, e % n, 1, &acc);
    c[e] = acc;
  }
}

extern "C" __global__ void approxsim_direct_conv_fwd(const approxsim_dl_in* x, const approxsim_dl_in* w, approxsim_dl_out* y, approxsim_dl_i64 items,
                                                     const approxsim_geometry g) {
  approxsim_dl_conv_args p = {x, w, y, g};
  APPROXSIM_DC_LOOP(e, items) {
    approxsim_dl_out acc;
    approxsim_dl_conv_fwd(&p, e / g.cout, e % g.cout, 1, &acc);
    y[e] = acc;
  }
}

extern "C" __global__ void approxsim_direct_conv_dgrad(const approxsim_dl_in* dy, const approxsim_dl_in* wt, approxsim_dl_out* dx,
                                                       approxsim_dl_i64 items, const approxsim_geometry g) {
  approxsim_dl_conv_args p = {dy, wt, dx, g};
  APPROXSIM_DC_LOOP(e, items) {
    approxsim_dl_out acc;
    approxsim_dl_conv_dgrad(&p, e / g.c, e % g.c, 1, &acc);
    dx[e] = acc;
  }
}

extern "C" __global__ void approxsim_direct_conv_wgrad(const approxsim_dl_in* x, const approxsim_dl_in* dy, approxsim_dl_out* dw,
                                                       approxsim_dl_i64 items, const approxsim_geometry g) {
  approxsim_dl_conv_args p = {x, dy, dw, g};
  const approxsim_dl_i64 cig = g.c / g.groups, cog = g.cout / g.groups;
  APPROXSIM_DC_LOOP(e, items) {
    const approxsim_dl_i64 co = e % g.cout, rest = e / g.cout; /* rest = (r * KW + t) * cig + ci */
    const approxsim_dl_i64 tap = rest / cig, ci = rest % cig;
    approxsim_dl_out acc;
    approxsim_dl_conv_wgrad(&p, tap * g.c + (co / cog) * cig + ci, co, 1, &acc);
    dw[e] = acc;
  }
}

#endif /* APPROXSIM_DIRECT_CUDA_H_ */
