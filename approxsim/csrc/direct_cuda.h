/*
 * direct_cuda.h: CUDA kernels of approxsim's direct multipliers (model compiled in).
 *
 * approxsim.direct.cuda appends this file to the model's source (with local
 * headers inlined) and APPROXSIM_DIRECT_FN defined to the model function, and
 * compiles the whole with NVRTC using -default-device (the model's unannotated
 * functions become __device__ functions) and --fmad=false (no fused
 * multiply-adds: the products and sums are the IEEE operations the source spells).
 *
 * One thread computes one output and adds its terms one after another in the
 * same order as the CPU kernels (direct_kernels.h), so CPU and GPU results agree
 * bit for bit wherever the model's own arithmetic does.  Zero padding enters the
 * forward and filter-gradient sums as products with +0.0f operands.
 *
 * Entry points (extern "C", grid-stride loops over the outputs; all sizes are
 * long long):
 *   approxsim_direct_multiply(a, b, out, count)
 *   approxsim_direct_matmul(a, b, c, items, m, k, n, a_batch_stride, b_batch_stride)
 *       items = batch * m * n; A (m, k), B (k, n) row-major; stride 0 broadcasts.
 *   approxsim_direct_conv_fwd(x, w, y, items, geometry...)            items = N*OH*OW*COUT
 *   approxsim_direct_conv_dgrad(dy, w_t, dx, items, geometry...)      items = N*H*W*C;
 *       w_t is w transposed to (KH, KW, COUT, C/G)
 *   approxsim_direct_conv_wgrad(x, dy, dw, items, geometry...)        items = KH*KW*(C/G)*COUT
 * with geometry = n, h, w, c, kh, kw, cout, groups, sh, sw, dh, dw, pad_top, pad_left, oh, ow.
 */
#ifndef APPROXSIM_DIRECT_CUDA_H_
#define APPROXSIM_DIRECT_CUDA_H_

#ifndef APPROXSIM_DIRECT_FN
#error "APPROXSIM_DIRECT_FN must name the model function"
#endif

typedef long long approxsim_dc_i64;

#define APPROXSIM_DC_LOOP(i, items)                                                      \
  for (approxsim_dc_i64 i = (approxsim_dc_i64)blockIdx.x * blockDim.x + threadIdx.x; i < (items); \
       i += (approxsim_dc_i64)blockDim.x * gridDim.x)

#define APPROXSIM_DC_GEOM                                                                     \
  approxsim_dc_i64 N, approxsim_dc_i64 H, approxsim_dc_i64 W, approxsim_dc_i64 C,             \
      approxsim_dc_i64 KH, approxsim_dc_i64 KW, approxsim_dc_i64 COUT, approxsim_dc_i64 G,    \
      approxsim_dc_i64 SH, approxsim_dc_i64 SW, approxsim_dc_i64 DH, approxsim_dc_i64 DW,     \
      approxsim_dc_i64 PT, approxsim_dc_i64 PL, approxsim_dc_i64 OH, approxsim_dc_i64 OW

extern "C" __global__ void approxsim_direct_multiply(const float* __restrict__ a, const float* __restrict__ b,
                                                     float* __restrict__ out, approxsim_dc_i64 count) {
  APPROXSIM_DC_LOOP(i, count) { out[i] = APPROXSIM_DIRECT_FN(a[i], b[i]); }
}

extern "C" __global__ void approxsim_direct_matmul(const float* __restrict__ a, const float* __restrict__ b,
                                                   float* __restrict__ c, approxsim_dc_i64 items,
                                                   approxsim_dc_i64 m, approxsim_dc_i64 k, approxsim_dc_i64 n,
                                                   approxsim_dc_i64 a_stride, approxsim_dc_i64 b_stride) {
  APPROXSIM_DC_LOOP(e, items) {
    const approxsim_dc_i64 j = e % n, row = e / n, i = row % m, bi = row / m;
    const float* arow = a + bi * a_stride + i * k;
    const float* bcol = b + bi * b_stride + j;
    float acc = 0.0f;
    for (approxsim_dc_i64 kk = 0; kk < k; ++kk) acc += APPROXSIM_DIRECT_FN(arow[kk], bcol[kk * n]);
    c[e] = acc;
  }
}

extern "C" __global__ void approxsim_direct_conv_fwd(const float* __restrict__ x, const float* __restrict__ w,
                                                     float* __restrict__ y, approxsim_dc_i64 items,
                                                     APPROXSIM_DC_GEOM) {
  const approxsim_dc_i64 cig = C / G, cog = COUT / G;
  APPROXSIM_DC_LOOP(e, items) {
    const approxsim_dc_i64 co = e % COUT, pix = e / COUT;
    const approxsim_dc_i64 ow = pix % OW, oh = (pix / OW) % OH, n = pix / (OW * OH);
    const approxsim_dc_i64 g = co / cog;
    float acc = 0.0f;
    for (approxsim_dc_i64 r = 0; r < KH; ++r) {
      const approxsim_dc_i64 ih = oh * SH - PT + r * DH;
      for (approxsim_dc_i64 s = 0; s < KW; ++s) {
        const approxsim_dc_i64 iw = ow * SW - PL + s * DW;
        const bool inside = ih >= 0 && ih < H && iw >= 0 && iw < W;
        const float* xpix = inside ? x + ((n * H + ih) * W + iw) * C + g * cig : x;
        const float* wtap = w + ((r * KW + s) * cig) * COUT + co;
        for (approxsim_dc_i64 ci = 0; ci < cig; ++ci)
          acc += APPROXSIM_DIRECT_FN(inside ? xpix[ci] : 0.0f, wtap[ci * COUT]);
      }
    }
    y[e] = acc;
  }
}

extern "C" __global__ void approxsim_direct_conv_dgrad(const float* __restrict__ dy, const float* __restrict__ wt,
                                                       float* __restrict__ dx, approxsim_dc_i64 items,
                                                       APPROXSIM_DC_GEOM) {
  const approxsim_dc_i64 cig = C / G, cog = COUT / G;
  APPROXSIM_DC_LOOP(e, items) {
    const approxsim_dc_i64 c = e % C, pix = e / C;
    const approxsim_dc_i64 iw = pix % W, ih = (pix / W) % H, n = pix / (W * H);
    const approxsim_dc_i64 g = c / cig, ci = c % cig;
    float acc = 0.0f;
    for (approxsim_dc_i64 r = 0; r < KH; ++r) {
      const approxsim_dc_i64 th = ih + PT - r * DH;
      if (th < 0 || th % SH) continue;
      const approxsim_dc_i64 oh = th / SH;
      if (oh >= OH) continue;
      for (approxsim_dc_i64 s = 0; s < KW; ++s) {
        const approxsim_dc_i64 tw = iw + PL - s * DW;
        if (tw < 0 || tw % SW) continue;
        const approxsim_dc_i64 ow = tw / SW;
        if (ow >= OW) continue;
        const float* dypix = dy + ((n * OH + oh) * OW + ow) * COUT + g * cog;
        const float* wtap = wt + ((r * KW + s) * COUT + g * cog) * cig + ci;
        for (approxsim_dc_i64 co = 0; co < cog; ++co) acc += APPROXSIM_DIRECT_FN(dypix[co], wtap[co * cig]);
      }
    }
    dx[e] = acc;
  }
}

extern "C" __global__ void approxsim_direct_conv_wgrad(const float* __restrict__ x, const float* __restrict__ dy,
                                                       float* __restrict__ dw, approxsim_dc_i64 items,
                                                       APPROXSIM_DC_GEOM) {
  const approxsim_dc_i64 cig = C / G, cog = COUT / G;
  APPROXSIM_DC_LOOP(e, items) {
    const approxsim_dc_i64 co = e % COUT, t = e / COUT;
    const approxsim_dc_i64 ci = t % cig, s = (t / cig) % KW, r = t / (cig * KW);
    const approxsim_dc_i64 c = (co / cog) * cig + ci;
    float acc = 0.0f;
    for (approxsim_dc_i64 n = 0; n < N; ++n) {
      for (approxsim_dc_i64 oh = 0; oh < OH; ++oh) {
        const approxsim_dc_i64 ih = oh * SH - PT + r * DH;
        for (approxsim_dc_i64 ow = 0; ow < OW; ++ow) {
          const approxsim_dc_i64 iw = ow * SW - PL + s * DW;
          const bool inside = ih >= 0 && ih < H && iw >= 0 && iw < W;
          const float xv = inside ? x[((n * H + ih) * W + iw) * C + c] : 0.0f;
          acc += APPROXSIM_DIRECT_FN(xv, dy[((n * OH + oh) * OW + ow) * COUT + co]);
        }
      }
    }
    dw[e] = acc;
  }
}

#endif /* APPROXSIM_DIRECT_CUDA_H_ */
