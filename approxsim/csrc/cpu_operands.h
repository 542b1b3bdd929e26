// cpu_operands.h: where the operands of each contraction live, and how they are packed.
//
// An A source gives A[r][k] and packs a block of rows; a B source gives B[k][n] and packs a block
// of columns. get() returns false where the operation forms no product at all (input-gradient
// positions that no output reaches), which the packed panels hold as 0 and the exact path skips.
// Matmul reads strided matrices (transposes need no copy); the convolutions are implicit GEMMs
// whose operand "matrices" are read straight from the NHWC/HWIO tensors while packing, so the
// working memory is a few packed blocks per thread, whatever the batch.
#ifndef APPROXSIM_CPU_OPERANDS_H_
#define APPROXSIM_CPU_OPERANDS_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu_simd.h"
#include "cpu_transpose.h"
#include "geometry.h"

namespace approxsim {

using Geom = approxsim_geometry;
inline int64_t cin_per_group(const Geom& g) { return g.c / g.groups; }
inline int64_t cout_per_group(const Geom& g) { return g.cout / g.groups; }

namespace detail {


// Copies a run of channels (often short: a plain loop beats a memcpy call there).
template <class T>
inline void copy_run(T* dst, const T* src, int n) {
  if (n >= 16) {
    std::memcpy(dst, src, sizeof(T) * n);
  } else {
    for (int t = 0; t < n; ++t) dst[t] = src[t];
  }
}

// A run of consecutive pixels of one image row: pixels off .. off+len-1 of a packed block are
// (n, y, x0 + t), t < len.
struct RowSeg {
  int64_t n, y, x0;
  int off, len;
};

// Cuts pixels p0 .. p0+np-1 of a (batch, rows, cols) grid into row segments.
inline void row_segments(int64_t p0, int np, int64_t rows, int64_t cols, std::vector<RowSeg>& out) {
  out.clear();
  int64_t x = p0 % cols, y = (p0 / cols) % rows, n = p0 / (cols * rows);
  for (int off = 0; off < np;) {
    const int len = static_cast<int>(std::min<int64_t>(cols - x, np - off));
    out.push_back(RowSeg{n, y, x, off, len});
    off += len;
    x = 0;
    if (++y == rows) {
      y = 0;
      ++n;
    }
  }
}

// d[j * ld + t] = src[t * step + j] for j < rows, t < n: rows (channels) of a patch or gradient
// matrix, each a strided run of pixels. rows is 1, or 8 (strided_rows) through AVX2 transposes.
inline void copy_strided_rows(const float* src, int64_t step, int n, float* d, int64_t ld, int rows) {
#ifdef APPROXSIM_X86
  if (rows == 8) return transpose_strided8(src, step, n, d, ld);
#endif
  if (step == 1) return copy_run(d, src, n);
  for (int t = 0; t < n; ++t) d[t] = src[t * step];
}
// The rows copy_strided_rows takes at once from row r of nr, channel ch of per_tap: 8 where the
// SIMD level has the transposes and 8 rows of one tap remain, else 1.
inline int strided_rows(int r, int nr, int64_t ch, int64_t per_tap) {
#ifdef APPROXSIM_X86
  if (r + 8 <= nr && ch + 8 <= per_tap && simd_level() >= kAvx2) return 8;
#endif
  return 1;
}
// raw[r * ld + k] = src[r * rs + k * ks] for r < nr, k < kc: a block of an operand stored along its
// rows (ks != 1) packed by rows. Where the rows are contiguous (rs == 1), 8 at a time through the
// AVX2 transposes; the rest by blocks of 16 rows. A plain loop over k with every row inside stores
// nr rows ld apart, and with ld a power of two (a contraction block) those stores alias in L1:
// measured (AMD Zen 5, AVX2, 2 threads), an MLP's filter gradient (784 x 300 over a batch of 128,
// A = the transposed input) took 1.81 ms, against 0.81 with the input transposed beforehand.
inline void pack_transposed(const float* src, int64_t rs, int64_t ks, int nr, int kc, float* raw, int64_t ld) {
  int r = 0;
#ifdef APPROXSIM_X86
  if (rs == 1 && simd_level() >= kAvx2)
    for (; r + 8 <= nr; r += 8) transpose_strided8(src + r, ks, kc, raw + r * ld, ld);
#endif
  constexpr int kRows = 16;
  for (; r < nr; r += kRows) {
    const int rn = std::min(kRows, nr - r);
    for (int k = 0; k < kc; ++k) {
      const float* s = src + r * rs + k * ks;
      for (int j = 0; j < rn; ++j) raw[(r + j) * ld + k] = s[j * rs];
    }
  }
}
// Zeroes what a clipped copy of [a, b) leaves of rows runs of len: d[j * ld + t] = 0 for j < rows,
// t < a or max(a, b) <= t < len.
inline void zero_outside(float* d, int64_t ld, int rows, int a, int b, int len) {
  for (int j = 0; j < rows; ++j) {
    std::fill(d + j * ld, d + j * ld + a, 0.0f);
    std::fill(d + j * ld + std::max(a, b), d + j * ld + len, 0.0f);
  }
}

// The range [lo, hi) of output positions o of a segment [o0, o0+len) whose input position
// o*stride + off lies in [0, size).
inline void valid_range(int64_t o0, int len, int64_t stride, int64_t off, int64_t size, int64_t& lo, int64_t& hi) {
  // o*stride + off >= 0  <=>  o >= ceil(-off / stride); o*stride + off < size <=> o <= floor((size-1-off)/stride).
  auto floor_div = [](int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); };
  // Clamped to the segment, so that an offset far outside the input (a huge dilation or
  // padding) gives an empty range inside [o0, o0 + len), never one beyond it.
  lo = std::min<int64_t>(std::max<int64_t>(o0, -floor_div(off, stride)), o0 + len);
  hi = std::max<int64_t>(lo, std::min<int64_t>(o0 + len, floor_div(size - 1 - off, stride) + 1));
}

struct StridedA {
  const float* p;
  int64_t rs, ks;
  bool get(int64_t r, int64_t k, float& v) const {
    v = p[r * rs + k * ks];
    return true;
  }
  void pack(int64_t r0, int nr, int64_t k0, int kc, float* raw, int ld) const {
    if (ks == 1) {
      for (int r = 0; r < nr; ++r) std::memcpy(raw + r * ld, p + (r0 + r) * rs + k0, sizeof(float) * kc);
    } else {
      pack_transposed(p + r0 * rs + k0 * ks, rs, ks, nr, kc, raw, ld);
    }
  }
};

// Forward convolution: A[p][q], p = (n, oy, ox), q = (ky, kx, ci) of group g; the input's values of
// type T (float, or the integer kernels' 16-bit codes: PatchA16).
template <class T>
struct PatchOf {
  const T* x;
  Geom g;
  int64_t c0;  // first input channel of the group
  bool get(int64_t r, int64_t k, float& v) const {
    const int64_t ox = r % g.ow, oy = (r / g.ow) % g.oh, n = r / (g.ow * g.oh);
    const int64_t ci = k % cin_per_group(g), tap = k / cin_per_group(g), kx = tap % g.kw, ky = tap / g.kw;
    const int64_t iy = oy * g.sh - g.pad_top + ky * g.dh, ix = ox * g.sw - g.pad_left + kx * g.dw;
    v = (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) ? T(0) : x[((n * g.h + iy) * g.w + ix) * g.c + c0 + ci];
    return true;
  }
  void pack(int64_t r0, int nr, int64_t k0, int kc, T* raw, int ld) const {
    const int64_t cig = cin_per_group(g);
    if (cig == g.c && g.dw == 1) return pack_rows(r0, nr, k0, kc, raw, ld);
    const int64_t tap0 = k0 / cig, ci0 = k0 % cig, kx0 = tap0 % g.kw, ky0 = tap0 / g.kw;
    int64_t ox = r0 % g.ow, oy = (r0 / g.ow) % g.oh, n = r0 / (g.ow * g.oh);
    for (int r = 0; r < nr; ++r) {
      const T* img = x + n * g.h * g.w * g.c + c0;
      int64_t kx = kx0, ky = ky0, ci = ci0;
      for (int k = 0; k < kc;) {
        const int64_t iy = oy * g.sh - g.pad_top + ky * g.dh, ix = ox * g.sw - g.pad_left + kx * g.dw;
        const int run = static_cast<int>(std::min<int64_t>(cig - ci, kc - k));
        if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) {
          std::fill_n(raw + r * ld + k, run, T(0));
        } else {
          copy_run(raw + r * ld + k, img + (iy * g.w + ix) * g.c + ci, run);
        }
        k += run;
        ci = 0;
        if (++kx == g.kw) {
          kx = 0;
          ++ky;
        }
      }
      if (++ox == g.ow) {
        ox = 0;
        if (++oy == g.oh) {
          oy = 0;
          ++n;
        }
      }
    }
  }
  // One group, no dilation along x: the kw*c values (kx, ci) of one kernel row ky are
  // contiguous in x, so each pixel's patch row is one copy per ky, clipped at the input's sides. By
  // runs of pixels of one output row, which share each ky's input row and its validity; a pixel whose
  // taps all lie inside the input's columns (most pixels) needs no clipping. Measured (AMD Zen 5, AVX2
  // level, 2 threads, medians of 40 in alternating runs): LeNet-5's first convolution (one input
  // channel, 5 x 5, batch 128) 2.02-2.07 -> 1.71-1.74 ms against a clipped copy per pixel and ky; the
  // ResNet layer's forward (64 channels) unchanged (15.1-15.5 ms at VBMI).
  void pack_rows(int64_t r0, int nr, int64_t k0, int kc, T* raw, int ld) const {
    const int64_t rowlen = g.kw * g.c, k1 = k0 + kc, ky0 = k0 / rowlen, ky1 = (k1 + rowlen - 1) / rowlen;
    int64_t ox = r0 % g.ow, oy = (r0 / g.ow) % g.oh, n = r0 / (g.ow * g.oh);
    for (int r = 0; r < nr;) {
      const int len = static_cast<int>(std::min<int64_t>(g.ow - ox, nr - r));  // pixels (n, oy, ox + t)
      for (int64_t ky = ky0; ky < ky1; ++ky) {
        const int64_t a = std::max(k0, ky * rowlen), b = std::min(k1, (ky + 1) * rowlen);
        const int64_t iy = oy * g.sh - g.pad_top + ky * g.dh;
        if (iy < 0 || iy >= g.h) {
          for (int t = 0; t < len; ++t)
            std::fill(raw + int64_t(r + t) * ld + (a - k0), raw + int64_t(r + t) * ld + (b - k0), T(0));
          continue;
        }
        const T* line = x + (n * g.h + iy) * g.w * g.c - ky * rowlen;  // line[ix * c + q]: q of this ky
        for (int t = 0; t < len; ++t) {
          T* dst = raw + int64_t(r + t) * ld - k0;  // dst[q] for q in [k0, k1)
          const int64_t ixs = (ox + t) * g.sw - g.pad_left;  // input column of kx = 0
          const T* src = line + ixs * g.c;  // src[q]
          if (ixs >= 0 && ixs + g.kw <= g.w) {
            copy_run(dst + a, src + a, static_cast<int>(b - a));
            continue;
          }
          // Valid (kx, ci) span of the row: ix = ixs + kx in [0, w), clamped to [0, kw] before
          // scaling (a column far outside the input, with huge padding, gives an empty span).
          const int64_t qlo = ky * rowlen + std::min<int64_t>(std::max<int64_t>(0, -ixs), g.kw) * g.c;
          const int64_t qhi = ky * rowlen + std::max<int64_t>(0, std::min<int64_t>(g.kw, g.w - ixs)) * g.c;
          const int64_t va = std::max(a, qlo), vb = std::min(b, qhi);
          int64_t q = a;
          for (; q < va; ++q) dst[q] = T(0);
          if (vb > q) {
            copy_run(dst + q, src + q, static_cast<int>(vb - q));
            q = vb;
          }
          for (; q < b; ++q) dst[q] = T(0);
        }
      }
      r += len;
      ox += len;
      if (ox == g.ow) {
        ox = 0;
        if (++oy == g.oh) {
          oy = 0;
          ++n;
        }
      }
    }
  }
};
using PatchA = PatchOf<float>;
using PatchA16 = PatchOf<uint16_t>;

// Input gradient: A[p][q], p = (n, y, x) an input pixel, q = (ky, kx, co) of group g;
// the output pixel that tap (ky, kx) of (y, x) reaches, if any.
struct GatherDyA {
  const float* dy;
  Geom g;
  int64_t o0;  // first output channel of the group
  // Output index along one axis for input position i and tap offset, or -1.
  static int64_t reach(int64_t i, int64_t pad, int64_t tap_off, int64_t stride, int64_t size) {
    const int64_t num = i + pad - tap_off;
    if (num < 0) return -1;
    if (stride == 1) return num < size ? num : -1;
    if (num % stride != 0) return -1;
    const int64_t o = num / stride;
    return o < size ? o : -1;
  }
  bool get(int64_t r, int64_t k, float& v) const {
    const int64_t x = r % g.w, y = (r / g.w) % g.h, n = r / (g.w * g.h);
    const int64_t co = k % cout_per_group(g), tap = k / cout_per_group(g), kx = tap % g.kw, ky = tap / g.kw;
    const int64_t oy = reach(y, g.pad_top, ky * g.dh, g.sh, g.oh), ox = reach(x, g.pad_left, kx * g.dw, g.sw, g.ow);
    v = 0.0f;
    if (oy < 0 || ox < 0) return false;
    v = dy[((n * g.oh + oy) * g.ow + ox) * g.cout + o0 + co];
    return true;
  }
  void pack(int64_t r0, int nr, int64_t k0, int kc, float* raw, int ld) const {
    const int64_t cog = cout_per_group(g);
    const int64_t tap0 = k0 / cog, co0 = k0 % cog, kx0 = tap0 % g.kw, ky0 = tap0 / g.kw;
    int64_t x = r0 % g.w, y = (r0 / g.w) % g.h, n = r0 / (g.w * g.h);
    for (int r = 0; r < nr; ++r) {
      const float* img = dy + n * g.oh * g.ow * g.cout + o0;
      int64_t kx = kx0, ky = ky0, co = co0;
      for (int k = 0; k < kc;) {
        const int64_t oy = reach(y, g.pad_top, ky * g.dh, g.sh, g.oh), ox = reach(x, g.pad_left, kx * g.dw, g.sw, g.ow);
        const int run = static_cast<int>(std::min<int64_t>(cog - co, kc - k));
        if (oy < 0 || ox < 0) {
          std::fill_n(raw + r * ld + k, run, 0.0f);
        } else {
          copy_run(raw + r * ld + k, img + (oy * g.ow + ox) * g.cout + co, run);
        }
        k += run;
        co = 0;
        if (++kx == g.kw) {
          kx = 0;
          ++ky;
        }
      }
      if (++x == g.w) {
        x = 0;
        if (++y == g.h) {
          y = 0;
          ++n;
        }
      }
    }
  }
};

// Filter gradient: A[q][p] (the transposed patch matrix), q = (ky, kx, ci), p = (n, oy, ox).
struct PatchTA {
  const float* x;
  Geom g;
  int64_t c0;
  bool get(int64_t r, int64_t k, float& v) const {
    PatchA pa{x, g, c0};
    return pa.get(k, r, v);
  }
  // The kc pixels are cut into runs along image rows once; each row (tap, channel) is then one
  // clipped strided copy per run, 8 rows (channels) of one tap at once where the SIMD level allows.
  void pack(int64_t r0, int nr, int64_t k0, int kc, float* raw, int ld) const {
    const int64_t cig = cin_per_group(g), step = g.sw * g.c;
    thread_local std::vector<RowSeg> segs;
    std::vector<RowSeg>& sg = segs;
    row_segments(k0, kc, g.oh, g.ow, sg);
    int64_t tap = r0 / cig, ci = r0 % cig;
    for (int r = 0; r < nr;) {
      const int rows = strided_rows(r, nr, ci, cig);
      const int64_t kx = tap % g.kw, ky = tap / g.kw;
      float* dst = raw + int64_t(r) * ld;
      for (const RowSeg& s : sg) {
        float* d = dst + s.off;
        const int64_t iy = s.y * g.sh - g.pad_top + ky * g.dh;
        int64_t lo = s.x0, hi = s.x0;  // an empty range where the input row is outside
        const int64_t xoff = kx * g.dw - g.pad_left;
        if (iy >= 0 && iy < g.h) valid_range(s.x0, s.len, g.sw, xoff, g.w, lo, hi);
        const int ta = static_cast<int>(lo - s.x0), tb = static_cast<int>(hi - s.x0);
        zero_outside(d, ld, rows, ta, tb, s.len);
        if (tb > ta)  // src: the input element of the first valid output position lo (inside the input)
          copy_strided_rows(x + ((s.n * g.h + iy) * g.w + lo * g.sw + xoff) * g.c + c0 + ci, step, tb - ta, d + ta,
                            ld, rows);
      }
      r += rows;
      ci += rows;
      if (ci == cig) {
        ci = 0;
        ++tap;
      }
    }
  }
};

// B[k][n] = p[base + (k / kdiv) * so + (k % kdiv) * si + n * sn].
struct GeneralB {
  const float* p;
  int64_t kdiv, so, si, sn;
  int64_t koff(int64_t k) const { return (k / kdiv) * so + (k % kdiv) * si; }
  bool get(int64_t k, int64_t n, float& v) const {
    v = p[koff(k) + n * sn];
    return true;
  }
  void pack(int64_t k0, int kc, int64_t n0, int nc, float* raw, int nr) const {
    for (int k = 0; k < kc; ++k) {
      const float* src = p + koff(k0 + k) + n0 * sn;
      float* dst = raw + k * nr;
      if (sn == 1) {
        std::memcpy(dst, src, sizeof(float) * nc);
      } else {
        for (int c = 0; c < nc; ++c) dst[c] = src[c * sn];
      }
      for (int c = nc; c < nr; ++c) dst[c] = 0.0f;
    }
  }
};

// ---------------------------------------------------------------------------------
// Transposed views: a GEMM run as C^T = B^T A^T (when C has few columns).

// For a GEMM run transposed (C^T = B^T A^T, when C has few columns): B^T as an A source.
struct TransposedB {
  const GeneralB& b;
  bool get(int64_t r, int64_t k, float& v) const { return b.get(k, r, v); }
  void pack(int64_t r0, int nr, int64_t k0, int kc, float* raw, int ld) const {
    if (k0 / b.kdiv == (k0 + kc - 1) / b.kdiv) {  // one run of k: koff(k) = koff(k0) + (k - k0) * si
      pack_transposed(b.p + b.koff(k0) + r0 * b.sn, b.sn, b.si, nr, kc, raw, ld);
      return;
    }
    for (int k = 0; k < kc; ++k) {
      const float* src = b.p + b.koff(k0 + k) + r0 * b.sn;
      for (int r = 0; r < nr; ++r) raw[r * ld + k] = src[r * b.sn];
    }
  }
};

// Zeroes the padding columns nc..nr-1 of kc rows of a packed B panel.
inline void zero_pad_cols(float* raw, int kc, int nc, int nr) {
  if (nc >= nr) return;
  for (int k = 0; k < kc; ++k) std::memset(raw + size_t(k) * nr + nc, 0, sizeof(float) * (nr - nc));
}

// ... and A^T as a B source.
template <class ASrc>
struct TransposedA {
  const ASrc& a;
  bool get(int64_t k, int64_t n, float& v) const { return a.get(n, k, v); }
  void pack(int64_t k0, int kc, int64_t n0, int nc, float* raw, int nr) const {
    thread_local std::vector<float> tmp;
    tmp.resize(size_t(nc) * kc);
    a.pack(n0, nc, k0, kc, tmp.data(), kc);
    for (int k = 0; k < kc; ++k) {
      float* dst = raw + k * nr;
      for (int c = 0; c < nc; ++c) dst[c] = tmp[size_t(c) * kc + k];
      for (int c = nc; c < nr; ++c) dst[c] = 0.0f;
    }
  }
};

// The patch matrices are each other's transposes (PatchTA[q][p] = PatchA[p][q]), so their
// transposed sources pack straight into the B panel, without a temporary and a transpose.
template <>
inline void TransposedA<PatchTA>::pack(int64_t k0, int kc, int64_t n0, int nc, float* raw, int nr) const {
  PatchA{a.x, a.g, a.c0}.pack(k0, kc, n0, nc, raw, nr);
  zero_pad_cols(raw, kc, nc, nr);
}

// Input gradient, transposed: B[(tap, co)][input pixel], by runs of pixels along image rows.
template <>
inline void TransposedA<GatherDyA>::pack(int64_t k0, int kc, int64_t n0, int nc, float* raw, int nr) const {
  const Geom& g = a.g;
  const int64_t cog = cout_per_group(g);
  thread_local std::vector<RowSeg> segs;
  std::vector<RowSeg>& sg = segs;
  row_segments(n0, nc, g.h, g.w, sg);
  int64_t tap = k0 / cog, co = k0 % cog;
  for (int k = 0; k < kc;) {
    const int rows = g.sw == 1 ? strided_rows(k, kc, co, cog) : 1;  // rows (tap, co) at once
    const int64_t kx = tap % g.kw, ky = tap / g.kw;
    float* dst = raw + int64_t(k) * nr;
    for (const RowSeg& s : sg) {
      float* d = dst + s.off;
      const int64_t oy = GatherDyA::reach(s.y, g.pad_top, ky * g.dh, g.sh, g.oh);
      const float* row = oy < 0 ? nullptr : a.dy + ((s.n * g.oh + oy) * g.ow) * g.cout + a.o0 + co;
      if (oy >= 0 && g.sw != 1) {
        for (int t = 0; t < s.len; ++t) {
          const int64_t ox = GatherDyA::reach(s.x0 + t, g.pad_left, kx * g.dw, g.sw, g.ow);
          d[t] = ox < 0 ? 0.0f : row[ox * g.cout];
        }
        continue;
      }
      // ox = x + pl - kx*dw in [0, ow) (stride 1); nothing where the output row is not reached.
      const int64_t xoff = g.pad_left - kx * g.dw;
      int64_t lo = s.x0, hi = s.x0;
      if (oy >= 0) valid_range(s.x0, s.len, 1, xoff, g.ow, lo, hi);
      const int ta = static_cast<int>(lo - s.x0), tb = static_cast<int>(hi - s.x0);
      zero_outside(d, nr, rows, ta, tb, s.len);
      if (tb > ta)  // src: the dy element of the first valid input position lo
        copy_strided_rows(row + (lo + xoff) * g.cout, g.cout, tb - ta, d + ta, nr, rows);
    }
    k += rows;
    co += rows;
    if (co == cog) {
      co = 0;
      ++tap;
    }
  }
  zero_pad_cols(raw, kc, nc, nr);
}

template <>
inline void TransposedA<PatchA>::pack(int64_t k0, int kc, int64_t n0, int nc, float* raw, int nr) const {
  PatchTA{a.x, a.g, a.c0}.pack(k0, kc, n0, nc, raw, nr);
  zero_pad_cols(raw, kc, nc, nr);
}


}  // namespace detail
}  // namespace approxsim

#endif  // APPROXSIM_CPU_OPERANDS_H_
