/*
 * direct_loops.h: the loops of approxsim's direct multipliers, one source for CPU and CUDA.
 *
 * Included after the user's model file with APPROXSIM_DIRECT_FN defined to the model
 * function.  Every product is a direct, inlinable call of the model on the real operands
 * (no table, no function pointer), through approxsim_dl_model(), a file-scope wrapper: no
 * name inside these loops can shadow the model function, whatever it is called.
 *
 * Each operation computes, for one output item, a run of `len` consecutive output columns
 * (channels) into acc[0..len).  The CPU (direct_cpu.h) takes runs of up to 256 columns,
 * the CUDA kernels (direct_cuda.h) one column per thread; the terms of every output are
 * added one after another in the same order in both (matmul: k = 0, 1, ...; conv: filter
 * row, column, then channel; filter gradient: batch, output row, column), so CPU and GPU
 * results agree bit for bit wherever the model's own arithmetic does.  Zero padding enters
 * the forward and filter-gradient sums as products with +0.0f operands (code 0 for integer
 * models), as in the reference.
 *
 * Operand order (DESIGN.md section 1): matmul FN(a, b); conv forward FN(x, w); input
 * gradient FN(dy, w); filter gradient FN(x, dy).  Valid C, C++ and CUDA.
 */
#ifndef APPROXSIM_DIRECT_LOOPS_H_
#define APPROXSIM_DIRECT_LOOPS_H_

#ifndef APPROXSIM_DIRECT_FN
#error "APPROXSIM_DIRECT_FN must name the model function"
#endif

#include "geometry.h"

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define APPROXSIM_DL_FN static __device__ __forceinline__
#define APPROXSIM_DL_AXPY static __device__ __forceinline__
#define APPROXSIM_DL_RESTRICT __restrict__
#elif defined(__GNUC__) || defined(__clang__)
#define APPROXSIM_DL_FN static inline
#define APPROXSIM_DL_AXPY static __attribute__((noinline)) /* vectorised once, the same everywhere */
#define APPROXSIM_DL_RESTRICT __restrict__
#else
#define APPROXSIM_DL_FN static inline
#define APPROXSIM_DL_AXPY static
#define APPROXSIM_DL_RESTRICT
#endif

typedef long long approxsim_dl_i64;

/* Operand and sum types: float for float models (the default); an integer model's generated
 * source defines APPROXSIM_DL_INTEGER, with codes in int32 arrays and exact int64 sums. */
#ifdef APPROXSIM_DL_INTEGER
typedef int approxsim_dl_in;
typedef long long approxsim_dl_out;
#else
typedef float approxsim_dl_in;
typedef float approxsim_dl_out;
#endif

/* Batched C = A B with A (m, k) and B (k, n) row-major; a batch stride 0 broadcasts. */
typedef struct {
  const approxsim_dl_in* a;
  const approxsim_dl_in* b;
  approxsim_dl_out* c;
  approxsim_dl_i64 m, k, n, a_batch_stride, b_batch_stride;
} approxsim_dl_matmul_args;

/* Convolutions: in0, in1 as each operation says; the geometry of geometry.h. */
typedef struct {
  const approxsim_dl_in* in0;
  const approxsim_dl_in* in1;
  approxsim_dl_out* out;
  approxsim_geometry g;
} approxsim_dl_conv_args;

/* Elementwise out[i] = FN(a[i], b[i]). */
typedef struct {
  const approxsim_dl_in* a;
  const approxsim_dl_in* b;
  approxsim_dl_out* out;
  approxsim_dl_i64 count;
} approxsim_dl_multiply_args;

APPROXSIM_DL_FN approxsim_dl_out approxsim_dl_model(approxsim_dl_in a, approxsim_dl_in b) {
  return (approxsim_dl_out)APPROXSIM_DIRECT_FN(a, b);
}

/* acc[j] += FN(s, row[j]) for j < len. */
APPROXSIM_DL_AXPY void approxsim_dl_axpy(approxsim_dl_out* APPROXSIM_DL_RESTRICT acc, approxsim_dl_in s,
                                         const approxsim_dl_in* APPROXSIM_DL_RESTRICT row, approxsim_dl_i64 len) {
  approxsim_dl_i64 j;
  for (j = 0; j < len; ++j) acc[j] += approxsim_dl_model(s, row[j]);
}

APPROXSIM_DL_FN void approxsim_dl_zero(approxsim_dl_out* acc, approxsim_dl_i64 len) {
  approxsim_dl_i64 j;
  for (j = 0; j < len; ++j) acc[j] = 0;
}

/* Row `row` (= batch * m + i) of C, columns [j0, j0 + len). */
APPROXSIM_DL_FN void approxsim_dl_matmul(const approxsim_dl_matmul_args* p, approxsim_dl_i64 row,
                                         approxsim_dl_i64 j0, approxsim_dl_i64 len, approxsim_dl_out* acc) {
  const approxsim_dl_i64 bi = row / p->m, i = row % p->m;
  const approxsim_dl_in* arow = p->a + bi * p->a_batch_stride + i * p->k;
  const approxsim_dl_in* bmat = p->b + bi * p->b_batch_stride + j0;
  approxsim_dl_i64 kk;
  approxsim_dl_zero(acc, len);
  for (kk = 0; kk < p->k; ++kk) approxsim_dl_axpy(acc, arow[kk], bmat + kk * p->n, len);
}

/*
 * Forward: in0 = x (N, H, W, C), in1 = w (KH, KW, C/G, COUT).  Output pixel `pix` = (n, oh, ow),
 * output channels [co0, co0 + len) of one group.
 */
APPROXSIM_DL_FN void approxsim_dl_conv_fwd(const approxsim_dl_conv_args* p, approxsim_dl_i64 pix,
                                           approxsim_dl_i64 co0, approxsim_dl_i64 len, approxsim_dl_out* acc) {
  const approxsim_geometry* g = &p->g;
  const approxsim_dl_i64 cig = g->c / g->groups, cog = g->cout / g->groups, grp = co0 / cog;
  const approxsim_dl_i64 n = pix / (g->oh * g->ow), oh = (pix / g->ow) % g->oh, ow = pix % g->ow;
  approxsim_dl_i64 r, t, ci;
  approxsim_dl_zero(acc, len);
  for (r = 0; r < g->kh; ++r) {
    const approxsim_dl_i64 ih = oh * g->sh - g->pad_top + r * g->dh;
    for (t = 0; t < g->kw; ++t) {
      const approxsim_dl_i64 iw = ow * g->sw - g->pad_left + t * g->dw;
      const int inside = ih >= 0 && ih < g->h && iw >= 0 && iw < g->w;
      const approxsim_dl_in* xpix = inside ? p->in0 + ((n * g->h + ih) * g->w + iw) * g->c + grp * cig : p->in0;
      const approxsim_dl_in* wtap = p->in1 + ((r * g->kw + t) * cig) * g->cout + co0;
      for (ci = 0; ci < cig; ++ci) approxsim_dl_axpy(acc, inside ? xpix[ci] : (approxsim_dl_in)0, wtap + ci * g->cout, len);
    }
  }
}

/*
 * Input gradient: in0 = dy (N, OH, OW, COUT), in1 = w transposed to (KH, KW, COUT, C/G).  Input
 * pixel `pix` = (n, ih, iw), input channels [c0, c0 + len) of one group.
 */
APPROXSIM_DL_FN void approxsim_dl_conv_dgrad(const approxsim_dl_conv_args* p, approxsim_dl_i64 pix,
                                             approxsim_dl_i64 c0, approxsim_dl_i64 len, approxsim_dl_out* acc) {
  const approxsim_geometry* g = &p->g;
  const approxsim_dl_i64 cig = g->c / g->groups, cog = g->cout / g->groups, grp = c0 / cig;
  const approxsim_dl_i64 n = pix / (g->h * g->w), ih = (pix / g->w) % g->h, iw = pix % g->w;
  approxsim_dl_i64 r, t, co;
  approxsim_dl_zero(acc, len);
  for (r = 0; r < g->kh; ++r) {
    const approxsim_dl_i64 th = ih + g->pad_top - r * g->dh; /* = oh * sh */
    approxsim_dl_i64 oh;
    if (th < 0 || th % g->sh) continue;
    oh = th / g->sh;
    if (oh >= g->oh) continue;
    for (t = 0; t < g->kw; ++t) {
      const approxsim_dl_i64 tw = iw + g->pad_left - t * g->dw;
      approxsim_dl_i64 ow;
      const approxsim_dl_in* dypix;
      const approxsim_dl_in* wtap;
      if (tw < 0 || tw % g->sw) continue;
      ow = tw / g->sw;
      if (ow >= g->ow) continue;
      dypix = p->in0 + ((n * g->oh + oh) * g->ow + ow) * g->cout + grp * cog;
      wtap = p->in1 + ((r * g->kw + t) * g->cout + grp * cog) * cig + (c0 - grp * cig);
      for (co = 0; co < cog; ++co) approxsim_dl_axpy(acc, dypix[co], wtap + co * cig, len);
    }
  }
}

/*
 * Filter gradient: in0 = x (N, H, W, C), in1 = dy (N, OH, OW, COUT).  Item = (r, t, c) for an
 * input channel c of any group; output channels [co0, co0 + len) of c's group.
 */
APPROXSIM_DL_FN void approxsim_dl_conv_wgrad(const approxsim_dl_conv_args* p, approxsim_dl_i64 item,
                                             approxsim_dl_i64 co0, approxsim_dl_i64 len, approxsim_dl_out* acc) {
  const approxsim_geometry* g = &p->g;
  const approxsim_dl_i64 r = item / (g->kw * g->c), t = (item / g->c) % g->kw, c = item % g->c;
  approxsim_dl_i64 n, oh, ow;
  approxsim_dl_zero(acc, len);
  for (n = 0; n < g->n; ++n) {
    for (oh = 0; oh < g->oh; ++oh) {
      const approxsim_dl_i64 ih = oh * g->sh - g->pad_top + r * g->dh;
      for (ow = 0; ow < g->ow; ++ow) {
        const approxsim_dl_i64 iw = ow * g->sw - g->pad_left + t * g->dw;
        const int inside = ih >= 0 && ih < g->h && iw >= 0 && iw < g->w;
        const approxsim_dl_in xv = inside ? p->in0[((n * g->h + ih) * g->w + iw) * g->c + c] : (approxsim_dl_in)0;
        approxsim_dl_axpy(acc, xv, p->in1 + ((n * g->oh + oh) * g->ow + ow) * g->cout + co0, len);
      }
    }
  }
}

/* Where the output of each item and column run goes. */
APPROXSIM_DL_FN approxsim_dl_out* approxsim_dl_wgrad_out(const approxsim_dl_conv_args* p, approxsim_dl_i64 item,
                                              approxsim_dl_i64 co0) {
  const approxsim_geometry* g = &p->g;
  const approxsim_dl_i64 cig = g->c / g->groups;
  const approxsim_dl_i64 r = item / (g->kw * g->c), t = (item / g->c) % g->kw, c = item % g->c;
  return p->out + ((r * g->kw + t) * cig + c % cig) * g->cout + co0;
}

#endif /* APPROXSIM_DIRECT_LOOPS_H_ */
