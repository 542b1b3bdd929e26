/*
 * approxsim_loaders.cuh: where the operands of each contraction live.
 *
 * A loader maps a contraction element to memory: a(r, k) and b(k, c) store the
 * operand and return 1, or return 0 when the element is absent (no product at
 * all); out_offset(r, c) is the output element.  GemmLoader reads strided
 * matrices; the conv loaders read NHWC/HWIO tensors as an implicit im2col view
 * (see conv.cu).  Host-compilable (g++), so the tests run this index arithmetic
 * on the CPU against the NumPy reference.
 */
#ifndef APPROXSIM_LOADERS_CUH_
#define APPROXSIM_LOADERS_CUH_

#include "approxsim_codes.cuh"
#include "geometry.h"

struct GemmLoader {
  const float* A;
  const float* B;
  float* out;
  int rows, cols, a_kfast, b_kfast;
  approxsim_i64 a_rs, a_ks, b_ks, b_cs;
  APPROXSIM_HDM int a(int r, int k, float* v) const {
    *v = APPROXSIM_LDG(A + (r * a_rs + k * a_ks));
    return 1;
  }
  APPROXSIM_HDM int b(int k, int c, float* v) const {
    *v = APPROXSIM_LDG(B + (k * b_ks + c * b_cs));
    return 1;
  }
  APPROXSIM_HDM approxsim_i64 out_offset(int r, int c) const { return (approxsim_i64)r * cols + c; }
};

/* The geometry of one group as the kernels index it: 32-bit ints (the host checks that every
 * extent fits), the channels per group, and the group g. */
struct ConvShape {
  int n, h, w, c, kh, kw, cout, groups, sh, sw, dh, dw, pt, pl, oh, ow, cig, cog, g;
};

APPROXSIM_HD ConvShape approxsim_conv_shape(const approxsim_geometry& G, int g) {
  ConvShape s = {(int)G.n, (int)G.h, (int)G.w, (int)G.c, (int)G.kh, (int)G.kw, (int)G.cout, (int)G.groups,
                 (int)G.sh, (int)G.sw, (int)G.dh, (int)G.dw, (int)G.pad_top, (int)G.pad_left, (int)G.oh,
                 (int)G.ow, (int)(G.c / G.groups), (int)(G.cout / G.groups), g};
  return s;
}

/* The input element of patch row (n, oh, ow) and tap (kh, kw, ci); 0 in the padding. */
APPROXSIM_HD float approxsim_patch(const float* x, const ConvShape& s, int n, int oh, int ow,
                                                 int kh, int kw, int ci) {
  int ih = oh * s.sh - s.pt + kh * s.dh, iw = ow * s.sw - s.pl + kw * s.dw;
  if (ih < 0 || ih >= s.h || iw < 0 || iw >= s.w) return 0.0f;
  return APPROXSIM_LDG(x + ((((approxsim_i64)n * s.h + ih) * s.w + iw) * s.c + s.g * s.cig + ci));
}

struct ConvFwdLoader {
  const float* p0; /* x */
  const float* p1; /* w */
  float* out;
  ConvShape s;
  int rows, cols, a_kfast, b_kfast;
  APPROXSIM_HDM int a(int r, int k, float* v) const {
    int ohw = s.oh * s.ow, n = r / ohw, rem = r - n * ohw, oh = rem / s.ow, ow = rem - oh * s.ow;
    int kwc = s.kw * s.cig, kh = k / kwc, rem2 = k - kh * kwc, kw = rem2 / s.cig, ci = rem2 - kw * s.cig;
    *v = approxsim_patch(p0, s, n, oh, ow, kh, kw, ci);
    return 1;
  }
  APPROXSIM_HDM int b(int k, int c, float* v) const {
    *v = APPROXSIM_LDG(p1 + ((approxsim_i64)k * s.cout + s.g * s.cog + c));
    return 1;
  }
  APPROXSIM_HDM approxsim_i64 out_offset(int r, int c) const { return (approxsim_i64)r * s.cout + s.g * s.cog + c; }
};

struct ConvDgradLoader {
  const float* p0; /* dy */
  const float* p1; /* w */
  float* out;
  ConvShape s;
  int rows, cols, a_kfast, b_kfast;
  APPROXSIM_HDM int a(int r, int k, float* v) const {
    int hw = s.h * s.w, n = r / hw, rem = r - n * hw, ih = rem / s.w, iw = rem - ih * s.w;
    int kwc = s.kw * s.cog, kh = k / kwc, rem2 = k - kh * kwc, kw = rem2 / s.cog, co = rem2 - kw * s.cog;
    int th = ih + s.pt - kh * s.dh, tw = iw + s.pl - kw * s.dw;
    if (th < 0 || tw < 0) return 0;
    int oh = th / s.sh, ow = tw / s.sw;
    if (oh * s.sh != th || ow * s.sw != tw || oh >= s.oh || ow >= s.ow) return 0;
    *v = APPROXSIM_LDG(p0 + ((((approxsim_i64)n * s.oh + oh) * s.ow + ow) * s.cout + s.g * s.cog + co));
    return 1;
  }
  APPROXSIM_HDM int b(int k, int c, float* v) const {
    int kwc = s.kw * s.cog, kh = k / kwc, rem2 = k - kh * kwc, kw = rem2 / s.cog, co = rem2 - kw * s.cog;
    *v = APPROXSIM_LDG(p1 + ((((approxsim_i64)kh * s.kw + kw) * s.cig + c) * s.cout + s.g * s.cog + co));
    return 1;
  }
  APPROXSIM_HDM approxsim_i64 out_offset(int r, int c) const { return (approxsim_i64)r * s.c + s.g * s.cig + c; }
};

struct ConvWgradLoader {
  const float* p0; /* x */
  const float* p1; /* dy */
  float* out;
  ConvShape s;
  int rows, cols, a_kfast, b_kfast;
  APPROXSIM_HDM int a(int r, int k, float* v) const {
    int kwc = s.kw * s.cig, kh = r / kwc, rem = r - kh * kwc, kw = rem / s.cig, ci = rem - kw * s.cig;
    int ohw = s.oh * s.ow, n = k / ohw, rem2 = k - n * ohw, oh = rem2 / s.ow, ow = rem2 - oh * s.ow;
    *v = approxsim_patch(p0, s, n, oh, ow, kh, kw, ci);
    return 1;
  }
  APPROXSIM_HDM int b(int k, int c, float* v) const {
    *v = APPROXSIM_LDG(p1 + ((approxsim_i64)k * s.cout + s.g * s.cog + c));
    return 1;
  }
  APPROXSIM_HDM approxsim_i64 out_offset(int r, int c) const { return (approxsim_i64)r * s.cout + s.g * s.cog + c; }
};

#endif /* APPROXSIM_LOADERS_CUH_ */
