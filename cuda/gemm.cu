/*
 * gemm.cu: batched approximate matrix product  C[b] = op(A[b]) (*) op(B[b]),
 * every product A(r, k) (*) B(k, c) looking up T[A][B] (DESIGN.md section 1).
 *
 * A(r, k) = A[b * a_bs + r * a_rs + k * a_ks] and B(k, c) = B[b * b_bs + k * b_ks + c * b_cs]
 * (element strides: transposes and broadcast batches, stride 0, need no copy);
 * C is contiguous (batch, rows, cols).  Grid: (ceil(rows / BM), ceil(cols / BN),
 * batch * splits); with splits > 1, C must be zeroed and blocks add with atomicAdd.
 * Compiled by CuPy (NVRTC) with -I <approxsim/csrc> -I <this folder>.
 */
#include "approxsim_tile.cuh"
#include "approxsim_loaders.cuh"

#define APPROXSIM_PARAMS_gemm                                                                  \
  const float *A, const float *B, float *C, const void *table, int m, int t_emin, int t_emax, int rows,        \
      int cols, int K,                                                                          \
      approxsim_i64 a_bs, approxsim_i64 a_rs, approxsim_i64 a_ks, approxsim_i64 b_bs,            \
      approxsim_i64 b_ks, approxsim_i64 b_cs, int splits, int k_chunk

#define APPROXSIM_BODY_gemm(P, BM, BN)                                               \
  int batch = blockIdx.z / splits, split = blockIdx.z % splits;                      \
  GemmLoader ld;                                                                     \
  ld.A = A + batch * a_bs;                                                           \
  ld.B = B + batch * b_bs;                                                           \
  ld.out = C + (approxsim_i64)batch * rows * cols;                                   \
  ld.rows = rows;                                                                    \
  ld.cols = cols;                                                                    \
  ld.a_rs = a_rs;                                                                    \
  ld.a_ks = a_ks;                                                                    \
  ld.b_ks = b_ks;                                                                    \
  ld.b_cs = b_cs;                                                                    \
  ld.a_kfast = a_ks == 1;                                                            \
  ld.b_kfast = b_ks == 1 && b_cs != 1;                                               \
  int kb = split * k_chunk, ke = min(K, kb + k_chunk);                               \
  approxsim_tiled<BM, BN, P>(ld, table, m, t_emin, t_emax, kb, ke, splits > 1);

APPROXSIM_KERNELS(gemm)
