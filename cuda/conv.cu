/*
 * conv.cu: implicit-GEMM 2-D convolution (NHWC activations, HWIO filters with
 * I = C / groups) and its two gradients, as three contractions per group g
 * (the group is blockIdx.z / splits):
 *
 *   forward      y[p, g, co]        = sum_{kh, kw, ci} x[patch(p, kh, kw), g, ci] (*) w[kh, kw, ci, g, co]
 *   input grad   dx[n, ih, iw, g, ci] = sum_{kh, kw, co} dy[n, oh, ow, g, co] (*) w[kh, kw, ci, g, co]
 *                over the taps with ih + pad - kh * dh = oh * sh (0 <= oh < OH), likewise for w
 *   filter grad  dw[kh, kw, ci, g, co] = sum_{n, oh, ow} x[patch, g, ci] (*) dy[n, oh, ow, g, co]
 *
 * in the operand order of DESIGN.md section 1 (T[x][w], T[dy][w], T[x][dy]).  The
 * patch elements are gathered straight from x while the tile is staged: no
 * im2col buffer exists in global memory.  Padding is zeros that take part in the
 * products (0 (*) Inf = NaN, as in the reference); an input-gradient tap that
 * falls between strides is absent (no product at all), as in the reference.
 */
#include "approxsim_tile.cuh"
#include "approxsim_loaders.cuh"

/* Every conv kernel: (first operand tensor, second operand tensor, output, table, M, the table's
 * exponent range, the geometry struct of geometry.h, split-K). */
#define APPROXSIM_CONV_PARAMS                                                                         \
  const float *P0, const float *P1, float *OUT, const void *table, int m, int t_emin, int t_emax,      \
      const approxsim_geometry G, int splits, int k_chunk

#define APPROXSIM_CONV_BODY(LOADER, ROWS, COLS, K, AKFAST, BKFAST, P, BM, BN)                     \
  ConvShape s = approxsim_conv_shape(G, (int)(blockIdx.z / splits));                               \
  int split = blockIdx.z % splits;                                                                 \
  LOADER ld;                                                                                       \
  ld.s = s;                                                                                        \
  ld.rows = (ROWS);                                                                                \
  ld.cols = (COLS);                                                                                \
  ld.a_kfast = (AKFAST);                                                                           \
  ld.b_kfast = (BKFAST);                                                                           \
  ld.out = OUT;                                                                                    \
  ld.p0 = P0;                                                                                      \
  ld.p1 = P1;                                                                                      \
  int kb = split * k_chunk, ke = min((K), kb + k_chunk);                                           \
  approxsim_tiled<BM, BN, P>(ld, table, m, t_emin, t_emax, kb, ke, splits > 1);

#define APPROXSIM_PARAMS_conv_fwd APPROXSIM_CONV_PARAMS
#define APPROXSIM_BODY_conv_fwd(P, BM, BN)                                                   \
  APPROXSIM_CONV_BODY(ConvFwdLoader, s.n * s.oh * s.ow, s.cog, s.kh * s.kw * s.cig, s.cig > 1, 0, P, BM, BN)

#define APPROXSIM_PARAMS_conv_dgrad APPROXSIM_CONV_PARAMS
#define APPROXSIM_BODY_conv_dgrad(P, BM, BN) \
  APPROXSIM_CONV_BODY(ConvDgradLoader, s.n * s.h * s.w, s.cig, s.kh * s.kw * s.cog, s.cog > 1, s.cog > 1, P, BM, BN)

#define APPROXSIM_PARAMS_conv_wgrad APPROXSIM_CONV_PARAMS
#define APPROXSIM_BODY_conv_wgrad(P, BM, BN) \
  APPROXSIM_CONV_BODY(ConvWgradLoader, s.kh * s.kw * s.cig, s.cog, s.n * s.oh * s.ow, 0, 0, P, BM, BN)

APPROXSIM_KERNELS(conv_fwd)
APPROXSIM_KERNELS(conv_dgrad)
APPROXSIM_KERNELS(conv_wgrad)
