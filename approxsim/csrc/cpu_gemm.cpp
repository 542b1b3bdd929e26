// cpu_gemm.cpp: the packed GEMM driver and the operand sources of matmul and convolution.
//
// The loop nest follows the usual blocked GEMM (Goto and van de Geijn, "Anatomy of
// high-performance matrix multiplication", ACM TOMS 2008): blocks of NC columns and
// KC contraction steps of B are packed once per thread, blocks of MC rows of A are
// packed and swept by MR x NR micro-kernels. The convolutions are implicit GEMMs:
// their operand "matrices" are read straight from the NHWC/HWIO tensors while
// packing, so the working memory is a few packed blocks per thread, whatever the batch.
#include "cpu_gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "cpu_pool.h"

namespace approxsim {
namespace {

// Block sizes.
int kKC = 256;  // contraction steps per packed block
int kMC = 128;  // rows of A per packed block (a multiple of every MR)
int kNC = 512;  // columns of B per packed block (a multiple of every NR)

// ---------------------------------------------------------------------------------
// Operand sources. A sources give A[r][k]; get() returns false where the operation
// forms no product at all (input gradient positions that no output reaches), which
// the packed panels hold as 0 and the exact path skips.

// Copies a run of channels (often short: a plain loop beats a memcpy call there).
inline void copy_run(float* dst, const float* src, int n) {
  if (n >= 16) {
    std::memcpy(dst, src, sizeof(float) * n);
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
      for (int k = 0; k < kc; ++k) {
        const float* src = p + r0 * rs + (k0 + k) * ks;
        for (int r = 0; r < nr; ++r) raw[r * ld + k] = src[r * rs];
      }
    }
  }
};

// Forward convolution: A[p][q], p = (n, oy, ox), q = (ky, kx, ci) of group g.
struct PatchA {
  const float* x;
  Geom g;
  int64_t c0;  // first input channel of the group
  bool get(int64_t r, int64_t k, float& v) const {
    const int64_t ox = r % g.ow, oy = (r / g.ow) % g.oh, n = r / (g.ow * g.oh);
    const int64_t ci = k % cin_per_group(g), tap = k / cin_per_group(g), kx = tap % g.kw, ky = tap / g.kw;
    const int64_t iy = oy * g.sh - g.pad_top + ky * g.dh, ix = ox * g.sw - g.pad_left + kx * g.dw;
    v = (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) ? 0.0f : x[((n * g.h + iy) * g.w + ix) * g.c + c0 + ci];
    return true;
  }
  void pack(int64_t r0, int nr, int64_t k0, int kc, float* raw, int ld) const {
    const int64_t cig = cin_per_group(g);
    if (cig == g.c && g.dw == 1) return pack_rows(r0, nr, k0, kc, raw, ld);
    const int64_t tap0 = k0 / cig, ci0 = k0 % cig, kx0 = tap0 % g.kw, ky0 = tap0 / g.kw;
    int64_t ox = r0 % g.ow, oy = (r0 / g.ow) % g.oh, n = r0 / (g.ow * g.oh);
    for (int r = 0; r < nr; ++r) {
      const float* img = x + n * g.h * g.w * g.c + c0;
      int64_t kx = kx0, ky = ky0, ci = ci0;
      for (int k = 0; k < kc;) {
        const int64_t iy = oy * g.sh - g.pad_top + ky * g.dh, ix = ox * g.sw - g.pad_left + kx * g.dw;
        const int run = static_cast<int>(std::min<int64_t>(cig - ci, kc - k));
        if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) {
          for (int t = 0; t < run; ++t) raw[r * ld + k + t] = 0.0f;
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
  // contiguous in x, so each pixel's patch row is one clipped copy per ky.
  void pack_rows(int64_t r0, int nr, int64_t k0, int kc, float* raw, int ld) const {
    const int64_t rowlen = g.kw * g.c, k1 = k0 + kc;
    int64_t ox = r0 % g.ow, oy = (r0 / g.ow) % g.oh, n = r0 / (g.ow * g.oh);
    for (int r = 0; r < nr; ++r) {
      float* dst = raw + int64_t(r) * ld - k0;  // dst[q] for q in [k0, k1)
      const int64_t ixs = ox * g.sw - g.pad_left;  // input column of kx = 0
      // Valid (kx, ci) span of a row: ix = ixs + kx in [0, w).
      // Clamped to [0, kw] before scaling: a column far outside the input (huge padding) gives an empty span.
      const int64_t qlo = std::min<int64_t>(std::max<int64_t>(0, -ixs), g.kw) * g.c;
      const int64_t qhi = std::max<int64_t>(0, std::min<int64_t>(g.kw, g.w - ixs)) * g.c;
      for (int64_t ky = k0 / rowlen; ky * rowlen < k1; ++ky) {
        const int64_t a = std::max(k0, ky * rowlen), b = std::min(k1, (ky + 1) * rowlen);
        const int64_t iy = oy * g.sh - g.pad_top + ky * g.dh;
        if (iy < 0 || iy >= g.h || qhi <= qlo) {
          for (int64_t q = a; q < b; ++q) dst[q] = 0.0f;
          continue;
        }
        const float* src = x + ((n * g.h + iy) * g.w + ixs) * g.c - ky * rowlen;  // src[q] for q of this ky
        const int64_t va = std::max(a, ky * rowlen + qlo), vb = std::min(b, ky * rowlen + qhi);
        int64_t q = a;
        for (; q < va; ++q) dst[q] = 0.0f;
        if (vb > q) {
          copy_run(dst + q, src + q, static_cast<int>(vb - q));
          q = vb;
        }
        for (; q < b; ++q) dst[q] = 0.0f;
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
};

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
          for (int t = 0; t < run; ++t) raw[r * ld + k + t] = 0.0f;
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
  // The kc pixels are cut into runs along image rows once; each row (tap, channel) is then
  // one clipped strided copy per run.
  void pack(int64_t r0, int nr, int64_t k0, int kc, float* raw, int ld) const {
    const int64_t cig = cin_per_group(g), step = g.sw * g.c;
    thread_local std::vector<RowSeg> segs;
    std::vector<RowSeg>& sg = segs;
    row_segments(k0, kc, g.oh, g.ow, sg);
    int64_t tap = r0 / cig, ci = r0 % cig;
    for (int r = 0; r < nr; ++r) {
      const int64_t kx = tap % g.kw, ky = tap / g.kw;
      float* dst = raw + int64_t(r) * ld;
      for (const RowSeg& s : sg) {
        float* d = dst + s.off;
        const int64_t iy = s.y * g.sh - g.pad_top + ky * g.dh;
        if (iy < 0 || iy >= g.h) {
          for (int t = 0; t < s.len; ++t) d[t] = 0.0f;
          continue;
        }
        int64_t lo, hi;
        const int64_t xoff = kx * g.dw - g.pad_left;
        valid_range(s.x0, s.len, g.sw, xoff, g.w, lo, hi);
        const int a = static_cast<int>(lo - s.x0), b = static_cast<int>(hi - s.x0);
        for (int t = 0; t < a; ++t) d[t] = 0.0f;
        if (b > a) {  // src: the input element of the first valid output position lo (inside the input)
          const float* src = x + ((s.n * g.h + iy) * g.w + lo * g.sw + xoff) * g.c + c0 + ci;
          for (int t = a; t < b; ++t) d[t] = src[int64_t(t - a) * step];
        }
        for (int t = b; t < s.len; ++t) d[t] = 0.0f;
      }
      if (++ci == cig) {
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
// Packed-panel conversion (formats in cpu_kernels.h)

// For a GEMM run transposed (C^T = B^T A^T, when C has few columns): B^T as an A source.
struct TransposedB {
  const GeneralB& b;
  bool get(int64_t r, int64_t k, float& v) const { return b.get(k, r, v); }
  void pack(int64_t r0, int nr, int64_t k0, int kc, float* raw, int ld) const {
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
void TransposedA<PatchTA>::pack(int64_t k0, int kc, int64_t n0, int nc, float* raw, int nr) const {
  PatchA{a.x, a.g, a.c0}.pack(k0, kc, n0, nc, raw, nr);
  zero_pad_cols(raw, kc, nc, nr);
}

// Input gradient, transposed: B[(tap, co)][input pixel], by runs of pixels along image rows.
template <>
void TransposedA<GatherDyA>::pack(int64_t k0, int kc, int64_t n0, int nc, float* raw, int nr) const {
  const Geom& g = a.g;
  const int64_t cog = cout_per_group(g);
  thread_local std::vector<RowSeg> segs;
  std::vector<RowSeg>& sg = segs;
  row_segments(n0, nc, g.h, g.w, sg);
  int64_t tap = k0 / cog, co = k0 % cog;
  for (int k = 0; k < kc; ++k) {
    const int64_t kx = tap % g.kw, ky = tap / g.kw;
    float* dst = raw + int64_t(k) * nr;
    for (const RowSeg& s : sg) {
      float* d = dst + s.off;
      const int64_t oy = GatherDyA::reach(s.y, g.pad_top, ky * g.dh, g.sh, g.oh);
      if (oy < 0) {
        for (int t = 0; t < s.len; ++t) d[t] = 0.0f;
        continue;
      }
      const float* row = a.dy + ((s.n * g.oh + oy) * g.ow) * g.cout + a.o0 + co;
      if (g.sw == 1) {
        // ox = x + pl - kx*dw in [0, ow).
        const int64_t xoff = g.pad_left - kx * g.dw;
        int64_t lo, hi;
        valid_range(s.x0, s.len, 1, xoff, g.ow, lo, hi);
        const int ta = static_cast<int>(lo - s.x0), tb = static_cast<int>(hi - s.x0);
        for (int t = 0; t < ta; ++t) d[t] = 0.0f;
        if (tb > ta) {  // src: the dy element of the first valid input position lo
          const float* src = row + (lo + xoff) * g.cout;
          for (int t = ta; t < tb; ++t) d[t] = src[int64_t(t - ta) * g.cout];
        }
        for (int t = tb; t < s.len; ++t) d[t] = 0.0f;
      } else {
        for (int t = 0; t < s.len; ++t) {
          const int64_t ox = GatherDyA::reach(s.x0 + t, g.pad_left, kx * g.dw, g.sw, g.ow);
          d[t] = ox < 0 ? 0.0f : row[ox * g.cout];
        }
      }
    }
    if (++co == cog) {
      co = 0;
      ++tap;
    }
  }
  zero_pad_cols(raw, kc, nc, nr);
}

template <>
void TransposedA<PatchA>::pack(int64_t k0, int kc, int64_t n0, int nc, float* raw, int nr) const {
  PatchTA{a.x, a.g, a.c0}.pack(k0, kc, n0, nc, raw, nr);
  zero_pad_cols(raw, kc, nc, nr);
}

struct Work {
  std::vector<float> araw, asc, braw, bsc, tile;
  std::vector<int32_t> aoff, bidx32;
  std::vector<uint16_t> bidx16, bext;
  std::vector<uint8_t> bidx8;
  std::vector<uint32_t> bmask;
  std::vector<uint64_t> bmask64;
  std::vector<Stats> astats, bstats;
};

// C[r][c] is C[r * ldc + c], or C[c * ldc + r] with trans_c.
template <class ASrc, class BSrc>
void gemm_task(const ASrc& A, const BSrc& B, float* C, int64_t ldc, bool trans_c, int64_t r0, int64_t r1, int64_t c0,
               int64_t c1, int64_t k0, int64_t k1, const Table& t, const KernelSet& ks, Work& w) {
  const int mr = ks.mr, nr = ks.nr, m = t.m;
  const bool exact = m == 0;
  const int64_t rs = trans_c ? 1 : ldc, cs = trans_c ? ldc : 1;
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = c0; c < c1; ++c) C[r * rs + c * cs] = 0.0f;
  if (k1 <= k0) return;
  w.araw.resize(size_t(kMC) * kKC);
  w.asc.resize(size_t(kMC) * kKC);
  w.aoff.resize(size_t(kMC) * kKC);
  w.astats.resize(kMC / mr + 1);
  w.braw.resize(size_t(kNC) * kKC);
  w.bsc.resize(size_t(kNC) * kKC);
  w.bidx32.resize(size_t(kNC) * kKC);
  w.bidx16.resize(size_t(kNC) * kKC);
  w.bmask.resize(size_t(kNC / nr + 1) * kKC);
  if (ks.bformat == kBytes8) {
    w.bidx8.resize(size_t(kNC) * kKC);
    w.bext.resize(size_t(kNC) * kKC);
    w.bmask64.resize(size_t(kNC / nr + 1) * kKC);
  }
  w.bstats.resize(kNC / nr + 1);
  w.tile.resize(size_t(mr) * nr);
  const int shift = 23 - m;
  const uint32_t imask = (1u << m) - 1;

  for (int64_t jc = c0; jc < c1; jc += kNC) {
    const int nc = static_cast<int>(std::min<int64_t>(kNC, c1 - jc));
    const int npan = (nc + nr - 1) / nr;
    for (int64_t pc = k0; pc < k1; pc += kKC) {
      const int kc = static_cast<int>(std::min<int64_t>(kKC, k1 - pc));
      // Pack B: npan panels of kc x nr.
      for (int jp = 0; jp < npan; ++jp) {
        const size_t base = size_t(jp) * kKC * nr;
        float* raw = w.braw.data() + base;
        B.pack(pc, kc, jc + int64_t(jp) * nr, std::min(nr, nc - jp * nr), raw, nr);
        Stats s;
        float* sc = w.bsc.data() + base;
        if (exact) {
          for (int q = 0; q < kc * nr; ++q) {
            account(bits(raw[q]), s);
            sc[q] = raw[q];
          }
        } else if (ks.bformat == kBytes8) {
          for (int k = 0; k < kc; ++k)
            convert_b_bytes8(raw + k * nr, m, w.bidx8.data() + base + k * nr, w.bext.data() + base + k * nr,
                             w.bmask64.data() + size_t(jp) * kKC + k, s);
        } else if (ks.bformat == kPermute16) {
          uint16_t* idx = w.bidx16.data() + base;
          uint32_t* msk = w.bmask.data() + size_t(jp) * kKC;
          for (int k = 0; k < kc; ++k) {
            uint32_t mk = 0;
            for (int c = 0; c < nr; ++c) {
              const uint32_t u = bits(raw[k * nr + c]);
              account(u, s);
              const uint32_t j = (u >> shift) & imask;
              const int pos = permute_pos(c);
              idx[k * nr + pos] = static_cast<uint16_t>(j);
              mk |= ((j >> 6) & 1u) << pos;
              sc[k * nr + c] = scale_of(u);
            }
            msk[k] = mk;
          }
        } else {
          int32_t* idx = w.bidx32.data() + base;
          for (int q = 0; q < kc * nr; ++q) {
            const uint32_t u = bits(raw[q]);
            account(u, s);
            idx[q] = static_cast<int32_t>((u >> shift) & imask);
            sc[q] = scale_of(u);
          }
        }
        w.bstats[jp] = s;
      }
      for (int64_t ic = r0; ic < r1; ic += kMC) {
        const int mc = static_cast<int>(std::min<int64_t>(kMC, r1 - ic));
        const int mpan = (mc + mr - 1) / mr;
        // Pack the block's rows (row r at r * kKC: panel ip holds rows ip*mr .. ip*mr + mr - 1).
        A.pack(ic, mc, pc, kc, w.araw.data(), kKC);
        for (int r = mc; r < mpan * mr; ++r) std::memset(w.araw.data() + size_t(r) * kKC, 0, sizeof(float) * kc);
        for (int ip = 0; ip < mpan; ++ip) {
          const size_t base = size_t(ip) * kKC * mr;
          Stats s;
          for (int r = 0; r < mr; ++r)
            convert_a(w.araw.data() + base + r * kKC, kc, m, ks.aoff_shift, w.aoff.data() + base + r * kKC,
                      w.asc.data() + base + r * kKC, s);
          w.astats[ip] = s;
        }
        for (int jp = 0; jp < npan; ++jp) {
          const size_t bbase = size_t(jp) * kKC * nr;
          const int cols = std::min(nr, nc - jp * nr);
          const int64_t col0 = jc + int64_t(jp) * nr;
          for (int ip = 0; ip < mpan; ++ip) {
            const size_t abase = size_t(ip) * kKC * mr;
            const int rows = std::min(mr, mc - ip * mr);
            const int64_t row0 = ic + int64_t(ip) * mr;
            float* tile = w.tile.data();
            const Stats& as = w.astats[ip];
            const Stats& bs = w.bstats[jp];
            const bool fast = exact ? fma_safe(as, bs) : float_domain_exact(t, as, bs);
            if (fast && exact) {
              ks.exact(kc, kKC, w.asc.data() + abase, w.bsc.data() + bbase, tile);
            } else if (fast) {
              const void* bidx = w.bidx32.data() + bbase;
              const void* bext = nullptr;
              const void* bmask = w.bmask.data() + size_t(jp) * kKC;
              if (ks.bformat == kPermute16) {
                bidx = w.bidx16.data() + bbase;
              } else if (ks.bformat == kBytes8) {
                bidx = w.bidx8.data() + bbase;
                bext = w.bext.data() + bbase;
                bmask = w.bmask64.data() + size_t(jp) * kKC;
              }
              ks.table(kc, kKC, w.aoff.data() + abase, w.asc.data() + abase, bidx, bext, bmask, w.bsc.data() + bbase, t,
                       tile);
            } else {
              // Exact scalar path (DESIGN.md section 1 through approx_product.h).
              for (int r = 0; r < rows; ++r) {
                for (int c = 0; c < cols; ++c) {
                  float acc = 0.0f;
                  for (int k = 0; k < kc; ++k) {
                    float a, b;
                    if (!A.get(row0 + r, pc + k, a) || !B.get(pc + k, col0 + c, b)) continue;
                    acc += exact ? a * b : approxsim_mul_split(a, b, t.split.data(), m);
                  }
                  tile[r * nr + c] = acc;
                }
              }
            }
            for (int r = 0; r < rows; ++r) {
              float* dst = C + (row0 + r) * rs + col0 * cs;
              const float* src = tile + r * nr;
              for (int c = 0; c < cols; ++c) dst[c * cs] += src[c];
            }
          }
        }
      }
    }
  }
}

// Splits rows (or, when there are too few, columns) over the threads.
template <class ASrc, class BSrc>
void gemm_run(const ASrc& A, const BSrc& B, float* C, int64_t ldc, bool trans_c, int64_t M, int64_t N, int64_t K,
              const Table& t, const KernelSet& ks, int threads) {
  // Row tasks of at least ~128 rows (each packs its own B blocks), up to 4 per thread so
  // that a busy core delays the others less; columns when there are too few rows.
  int64_t tasks_m = 1, tasks_n = 1, tasks_k = 1;
  const int64_t row_panels = (M + ks.mr - 1) / ks.mr, col_panels = (N + ks.nr - 1) / ks.nr;
  if (threads > 1) {
    const int64_t work = M * N * std::max<int64_t>(K, 1);
    if (work < (int64_t(1) << 16)) {
      threads = 1;
    } else if (M <= kMC && col_panels < 2 * threads && K >= int64_t(8) * kKC * threads) {
      // Few rows and columns, a long contraction (filter gradients): split the contraction,
      // each task summing into its own copy of C (the order of the sums is unspecified), so
      // that no two threads pack the same B blocks.
      tasks_k = std::min<int64_t>(2 * threads, K / (int64_t(4) * kKC));
    } else if (row_panels >= 2 * threads || row_panels >= col_panels) {
      tasks_m = std::max<int64_t>(threads, std::min<int64_t>(4 * threads, M / 128));
      tasks_m = std::min(tasks_m, row_panels);
    } else {
      tasks_n = std::max<int64_t>(threads, std::min<int64_t>(4 * threads, N / 128));
      tasks_n = std::min(tasks_n, col_panels);
    }
  }
  if (tasks_k > 1) {
    const int64_t k_steps = (K + kKC - 1) / kKC;
    std::vector<float> part(size_t(tasks_k) * M * N);
    ThreadPool::instance().parallel_for(static_cast<int>(tasks_k), threads, [&](int task) {
      const int64_t k0 = std::min(K, (k_steps * task / tasks_k) * kKC);
      const int64_t k1 = std::min(K, (k_steps * (task + 1) / tasks_k) * kKC);
      thread_local Work w;
      gemm_task(A, B, part.data() + size_t(task) * M * N, N, false, 0, M, 0, N, k0, k1, t, ks, w);
    });
    const int64_t rs = trans_c ? 1 : ldc, cs = trans_c ? ldc : 1;
    for (int64_t r = 0; r < M; ++r)
      for (int64_t c = 0; c < N; ++c) {
        float acc = 0.0f;
        for (int64_t q = 0; q < tasks_k; ++q) acc += part[(size_t(q) * M + r) * N + c];
        C[r * rs + c * cs] = acc;
      }
    return;
  }
  const int64_t tasks = tasks_m * tasks_n;
  ThreadPool::instance().parallel_for(static_cast<int>(tasks), threads, [&](int task) {
    const int64_t tm = task / tasks_n, tn = task % tasks_n;
    const int64_t r0 = std::min(M, (row_panels * tm / tasks_m) * ks.mr);
    const int64_t r1 = std::min(M, (row_panels * (tm + 1) / tasks_m) * ks.mr);
    const int64_t c0 = std::min(N, (col_panels * tn / tasks_n) * ks.nr);
    const int64_t c1 = std::min(N, (col_panels * (tn + 1) / tasks_n) * ks.nr);
    if (r0 >= r1 || c0 >= c1) return;
    thread_local Work w;
    gemm_task(A, B, C, ldc, trans_c, r0, r1, c0, c1, 0, K, t, ks, w);
  });
}

// C[M, N] = A (*) B. With few columns (most of each NR-wide panel would be padding) and more
// rows, it computes C^T = B^T (*)' A^T instead, where (*)' looks up the transposed table:
// the products are the same, T'[j][i] = T[i][j].
template <class ASrc>
void gemm(const ASrc& A, const GeneralB& B, float* C, int64_t ldc, int64_t M, int64_t N, int64_t K, const Table& t,
          int threads) {
  if (M <= 0 || N <= 0) return;
  const KernelSet ks = select_kernels(t);
  if (2 * N <= ks.nr && M > N) {
    const Table& tt = t.transposed();
    gemm_run(TransposedB{B}, TransposedA<ASrc>{A}, C, ldc, true, N, M, K, tt, select_kernels(tt), threads);
  } else {
    gemm_run(A, B, C, ldc, false, M, N, K, t, ks, threads);
  }
}

}  // namespace

void gemm_strided(const float* a, int64_t a_rs, int64_t a_ks, const float* b, int64_t b_ks, int64_t b_ns, float* c,
                  int64_t m, int64_t n, int64_t k, const Table& t, int threads) {
  StridedA A{a, a_rs, a_ks};
  GeneralB B{b, std::max<int64_t>(k, 1), 0, b_ks, b_ns};
  gemm(A, B, c, n, m, n, k, t, threads);
}

void conv2d_forward(const float* x, const float* w, float* y, const Geom& g, const Table& t, int threads) {
  const int64_t cig = cin_per_group(g), cog = cout_per_group(g), K = g.kh * g.kw * cig, M = g.n * g.oh * g.ow;
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    PatchA A{x, g, grp * cig};
    GeneralB B{w + grp * cog, K, 0, g.cout, 1};  // w[(tap*cig + ci)*cout + grp*cog + co]
    gemm(A, B, y + grp * cog, g.cout, M, cog, K, t, threads);
  }
}

void conv2d_input_grad(const float* dy, const float* w, float* dx, const Geom& g, const Table& t, int threads) {
  const int64_t cig = cin_per_group(g), cog = cout_per_group(g), K = g.kh * g.kw * cog, M = g.n * g.h * g.w;
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    GatherDyA A{dy, g, grp * cog};
    GeneralB B{w + grp * cog, cog, cig * g.cout, 1, g.cout};  // k = (tap, co), n = ci
    gemm(A, B, dx + grp * cig, g.c, M, cig, K, t, threads);
  }
}

void conv2d_filter_grad(const float* x, const float* dy, float* dw, const Geom& g, const Table& t, int threads) {
  const int64_t cig = cin_per_group(g), cog = cout_per_group(g), M = g.kh * g.kw * cig, K = g.n * g.oh * g.ow;
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    PatchTA A{x, g, grp * cig};
    GeneralB B{dy + grp * cog, std::max<int64_t>(K, 1), 0, g.cout, 1};  // k = p, n = co
    gemm(A, B, dw + grp * cog, g.cout, M, cog, K, t, threads);
  }
}

}  // namespace approxsim
