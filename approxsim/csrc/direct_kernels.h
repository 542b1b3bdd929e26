/*
 * direct_kernels.h: CPU loops of approxsim's direct multipliers (model compiled in).
 *
 * Included at the end of a generated translation unit, after the user's model
 * file, with APPROXSIM_DIRECT_FN defined to the model's function name: every
 * product below is a direct, inlinable call of that function on the real
 * operands (no table, no function pointer).  The file is valid C and C++, so a
 * C model is compiled as C, exactly as a user's own program would compile it.
 *
 * Each entry point computes the outputs numbered [begin, end) of one operation;
 * approxsim_direct_run() (direct_runner.h, C++) spreads them over threads.
 * Every output is a float32 sum whose terms are added one after another in a
 * fixed order (matmul: k = 0, 1, ...; conv: filter row, column, then channel;
 * filter gradient: batch, output row, column), so results do not depend on the
 * number of threads.  Zero padding enters the forward and filter-gradient sums
 * as products with +0.0f operands, as in approxsim's reference backend.
 *
 * Operand order (DESIGN.md section 1): matmul FN(a, b); conv forward FN(x, w);
 * input gradient FN(dy, w); filter gradient FN(x, dy).
 */
#ifndef APPROXSIM_DIRECT_KERNELS_H_
#define APPROXSIM_DIRECT_KERNELS_H_

typedef long long approxsim_dk_i64;

/* Arguments of every entry point; the meaning of v[] depends on the operation. */
typedef struct {
  const float* in0;
  const float* in1;
  float* out;
  approxsim_dk_i64 v[20];
} approxsim_dk_args;

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*approxsim_dk_chunk_fn)(const approxsim_dk_args*, approxsim_dk_i64, approxsim_dk_i64);

void approxsim_dk_multiply(const approxsim_dk_args* p, approxsim_dk_i64 begin, approxsim_dk_i64 end);
void approxsim_dk_matmul(const approxsim_dk_args* p, approxsim_dk_i64 begin, approxsim_dk_i64 end);
void approxsim_dk_conv_fwd(const approxsim_dk_args* p, approxsim_dk_i64 begin, approxsim_dk_i64 end);
void approxsim_dk_conv_dgrad(const approxsim_dk_args* p, approxsim_dk_i64 begin, approxsim_dk_i64 end);
void approxsim_dk_conv_wgrad(const approxsim_dk_args* p, approxsim_dk_i64 begin, approxsim_dk_i64 end);

#ifdef __cplusplus
}
#endif

#ifndef APPROXSIM_DK_DECLARE_ONLY

#ifndef APPROXSIM_DIRECT_FN
#error "APPROXSIM_DIRECT_FN must name the model function"
#endif

#define APPROXSIM_DK_TILE 256

/* Conv geometry, in the order approxsim.direct packs it into v[]. */
#define DK_N p->v[0]
#define DK_H p->v[1]
#define DK_W p->v[2]
#define DK_C p->v[3]
#define DK_KH p->v[4]
#define DK_KW p->v[5]
#define DK_COUT p->v[6]
#define DK_GROUPS p->v[7]
#define DK_SH p->v[8]
#define DK_SW p->v[9]
#define DK_DH p->v[10]
#define DK_DW p->v[11]
#define DK_PT p->v[12]
#define DK_PL p->v[13]
#define DK_OH p->v[14]
#define DK_OW p->v[15]

#if defined(__GNUC__) || defined(__clang__)
#define APPROXSIM_DK_RESTRICT __restrict__
#define APPROXSIM_DK_NOINLINE __attribute__((noinline))
#else
#define APPROXSIM_DK_RESTRICT
#define APPROXSIM_DK_NOINLINE
#endif

/*
 * acc[j] += FN(s, row[j]) for j < len: the inner loop of every operation, kept out of
 * line so that it is vectorised the same way wherever it is used.
 */
static APPROXSIM_DK_NOINLINE void approxsim_dk_axpy(float* APPROXSIM_DK_RESTRICT acc, float s,
                                                    const float* APPROXSIM_DK_RESTRICT row, approxsim_dk_i64 len) {
  approxsim_dk_i64 j;
  for (j = 0; j < len; ++j) acc[j] += APPROXSIM_DIRECT_FN(s, row[j]);
}

static inline void approxsim_dk_zero(float* acc, approxsim_dk_i64 len) {
  approxsim_dk_i64 j;
  for (j = 0; j < len; ++j) acc[j] = 0.0f;
}

#ifdef __cplusplus
extern "C" {
#endif

/* out[i] = FN(in0[i], in1[i]). */
void approxsim_dk_multiply(const approxsim_dk_args* p, approxsim_dk_i64 begin, approxsim_dk_i64 end) {
  approxsim_dk_i64 i;
  for (i = begin; i < end; ++i) p->out[i] = APPROXSIM_DIRECT_FN(p->in0[i], p->in1[i]);
}

/*
 * Batched C = A B with A (m, k) and B (k, n) row-major; v = {m, k, n, a batch
 * stride, b batch stride} (stride 0 broadcasts).  Output item = batch * m + row.
 */
void approxsim_dk_matmul(const approxsim_dk_args* p, approxsim_dk_i64 begin, approxsim_dk_i64 end) {
  const approxsim_dk_i64 m = p->v[0], k = p->v[1], n = p->v[2];
  float acc[APPROXSIM_DK_TILE];
  approxsim_dk_i64 item, j0, kk;
  for (item = begin; item < end; ++item) {
    const approxsim_dk_i64 bi = item / m, i = item % m;
    const float* arow = p->in0 + bi * p->v[3] + i * k;
    const float* bmat = p->in1 + bi * p->v[4];
    float* crow = p->out + item * n;
    for (j0 = 0; j0 < n; j0 += APPROXSIM_DK_TILE) {
      const approxsim_dk_i64 len = n - j0 < APPROXSIM_DK_TILE ? n - j0 : APPROXSIM_DK_TILE;
      approxsim_dk_zero(acc, len);
      for (kk = 0; kk < k; ++kk) approxsim_dk_axpy(acc, arow[kk], bmat + kk * n + j0, len);
      for (kk = 0; kk < len; ++kk) crow[j0 + kk] = acc[kk];
    }
  }
}

/*
 * Forward convolution: in0 = x (N, H, W, C), in1 = w (KH, KW, C/G, COUT), out = y
 * (N, OH, OW, COUT).  Output item = one output pixel (n, oh, ow), all channels.
 */
void approxsim_dk_conv_fwd(const approxsim_dk_args* p, approxsim_dk_i64 begin, approxsim_dk_i64 end) {
  const approxsim_dk_i64 cig = DK_C / DK_GROUPS, cog = DK_COUT / DK_GROUPS;
  float acc[APPROXSIM_DK_TILE];
  approxsim_dk_i64 item, g, j0, r, s, ci, j;
  for (item = begin; item < end; ++item) {
    const approxsim_dk_i64 n = item / (DK_OH * DK_OW), oh = (item / DK_OW) % DK_OH, ow = item % DK_OW;
    float* yrow = p->out + item * DK_COUT;
    for (g = 0; g < DK_GROUPS; ++g) {
      for (j0 = 0; j0 < cog; j0 += APPROXSIM_DK_TILE) {
        const approxsim_dk_i64 len = cog - j0 < APPROXSIM_DK_TILE ? cog - j0 : APPROXSIM_DK_TILE;
        approxsim_dk_zero(acc, len);
        for (r = 0; r < DK_KH; ++r) {
          const approxsim_dk_i64 ih = oh * DK_SH - DK_PT + r * DK_DH;
          for (s = 0; s < DK_KW; ++s) {
            const approxsim_dk_i64 iw = ow * DK_SW - DK_PL + s * DK_DW;
            const int inside = ih >= 0 && ih < DK_H && iw >= 0 && iw < DK_W;
            const float* xpix = inside ? p->in0 + ((n * DK_H + ih) * DK_W + iw) * DK_C + g * cig : p->in0;
            const float* wtap = p->in1 + ((r * DK_KW + s) * cig) * DK_COUT + g * cog + j0;
            for (ci = 0; ci < cig; ++ci)
              approxsim_dk_axpy(acc, inside ? xpix[ci] : 0.0f, wtap + ci * DK_COUT, len);
          }
        }
        for (j = 0; j < len; ++j) yrow[g * cog + j0 + j] = acc[j];
      }
    }
  }
}

/*
 * Input gradient: in0 = dy (N, OH, OW, COUT), in1 = w transposed to (KH, KW, COUT,
 * C/G), out = dx (N, H, W, C).  Output item = one input pixel (n, h, w).
 */
void approxsim_dk_conv_dgrad(const approxsim_dk_args* p, approxsim_dk_i64 begin, approxsim_dk_i64 end) {
  const approxsim_dk_i64 cig = DK_C / DK_GROUPS, cog = DK_COUT / DK_GROUPS;
  float acc[APPROXSIM_DK_TILE];
  approxsim_dk_i64 item, g, j0, r, s, co, j;
  for (item = begin; item < end; ++item) {
    const approxsim_dk_i64 n = item / (DK_H * DK_W), ih = (item / DK_W) % DK_H, iw = item % DK_W;
    float* dxrow = p->out + item * DK_C;
    for (g = 0; g < DK_GROUPS; ++g) {
      for (j0 = 0; j0 < cig; j0 += APPROXSIM_DK_TILE) {
        const approxsim_dk_i64 len = cig - j0 < APPROXSIM_DK_TILE ? cig - j0 : APPROXSIM_DK_TILE;
        approxsim_dk_zero(acc, len);
        for (r = 0; r < DK_KH; ++r) {
          const approxsim_dk_i64 th = ih + DK_PT - r * DK_DH; /* = oh * SH */
          approxsim_dk_i64 oh;
          if (th < 0 || th % DK_SH) continue;
          oh = th / DK_SH;
          if (oh >= DK_OH) continue;
          for (s = 0; s < DK_KW; ++s) {
            const approxsim_dk_i64 tw = iw + DK_PL - s * DK_DW;
            approxsim_dk_i64 ow;
            const float* dypix;
            const float* wtap;
            if (tw < 0 || tw % DK_SW) continue;
            ow = tw / DK_SW;
            if (ow >= DK_OW) continue;
            dypix = p->in0 + ((n * DK_OH + oh) * DK_OW + ow) * DK_COUT + g * cog;
            wtap = p->in1 + ((r * DK_KW + s) * DK_COUT + g * cog) * cig + j0;
            for (co = 0; co < cog; ++co) approxsim_dk_axpy(acc, dypix[co], wtap + co * cig, len);
          }
        }
        for (j = 0; j < len; ++j) dxrow[g * cig + j0 + j] = acc[j];
      }
    }
  }
}

/*
 * Filter gradient: in0 = x (N, H, W, C), in1 = dy (N, OH, OW, COUT), out = dw (KH,
 * KW, C/G, COUT).  Output item = (r, s, c) for an input channel c of any group.
 */
void approxsim_dk_conv_wgrad(const approxsim_dk_args* p, approxsim_dk_i64 begin, approxsim_dk_i64 end) {
  const approxsim_dk_i64 cig = DK_C / DK_GROUPS, cog = DK_COUT / DK_GROUPS;
  float acc[APPROXSIM_DK_TILE];
  approxsim_dk_i64 item, j0, n, oh, ow, j;
  for (item = begin; item < end; ++item) {
    const approxsim_dk_i64 r = item / (DK_KW * DK_C), s = (item / DK_C) % DK_KW, c = item % DK_C;
    const approxsim_dk_i64 g = c / cig;
    float* dwrow = p->out + ((r * DK_KW + s) * cig + c % cig) * DK_COUT + g * cog;
    for (j0 = 0; j0 < cog; j0 += APPROXSIM_DK_TILE) {
      const approxsim_dk_i64 len = cog - j0 < APPROXSIM_DK_TILE ? cog - j0 : APPROXSIM_DK_TILE;
      approxsim_dk_zero(acc, len);
      for (n = 0; n < DK_N; ++n) {
        for (oh = 0; oh < DK_OH; ++oh) {
          const approxsim_dk_i64 ih = oh * DK_SH - DK_PT + r * DK_DH;
          for (ow = 0; ow < DK_OW; ++ow) {
            const approxsim_dk_i64 iw = ow * DK_SW - DK_PL + s * DK_DW;
            const int inside = ih >= 0 && ih < DK_H && iw >= 0 && iw < DK_W;
            const float xv = inside ? p->in0[((n * DK_H + ih) * DK_W + iw) * DK_C + c] : 0.0f;
            approxsim_dk_axpy(acc, xv, p->in1 + ((n * DK_OH + oh) * DK_OW + ow) * DK_COUT + g * cog + j0, len);
          }
        }
      }
      for (j = 0; j < len; ++j) dwrow[j0 + j] = acc[j];
    }
  }
}

#ifdef __cplusplus
}
#endif

#endif /* APPROXSIM_DK_DECLARE_ONLY */
#endif /* APPROXSIM_DIRECT_KERNELS_H_ */
