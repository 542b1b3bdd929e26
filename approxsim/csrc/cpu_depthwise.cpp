// cpu_depthwise.cpp: depthwise convolutions on linear-sum tables, 8 channels per vector (AVX2).
#include "cpu_depthwise.h"

#include <algorithm>
#include <vector>

#include "cpu_driver.h"
#include "cpu_isa.h"
#include "cpu_pool.h"

namespace approxsim {

#ifdef APPROXSIM_X86
namespace {

// The linear-sum coefficients and the operands' class extraction, as vectors.
struct Coefficients {
  __m256 alpha[LinearSum::kMaxPieces], beta[LinearSum::kMaxPieces], theta[LinearSum::kMaxPieces];
  __m128i ushift, vshift;  // 23 - m + the class shift
  __m256i umask, vmask;
};

APPROXSIM_AVX2 Coefficients coefficients(const Table& t) {
  Coefficients c;
  const LinearSum& lin = t.lin;
  for (int p = 0; p < LinearSum::kMaxPieces; ++p) {
    c.alpha[p] = _mm256_set1_ps(lin.alpha[p]);
    c.beta[p] = _mm256_set1_ps(lin.beta[p]);
    c.theta[p] = _mm256_set1_ps(lin.theta[p]);
  }
  const int full = (1 << t.m) - 1;
  c.ushift = _mm_cvtsi32_si128(23 - t.m + lin.ushift);
  c.vshift = _mm_cvtsi32_si128(23 - t.m + lin.vshift);
  c.umask = _mm256_set1_epi32(full >> lin.ushift);
  c.vmask = _mm256_set1_epi32(full >> lin.vshift);
  return c;
}

// The class (u or v) of 8 operands, as floats.
APPROXSIM_AVX2 inline __m256 classes(__m256 x, __m128i shift, __m256i mask) {
  return _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srl_epi32(_mm256_castps_si256(x), shift), mask));
}

// sign | exponent of 8 operands: +-2^E, or +-0 for zero and subnormal operands.
APPROXSIM_AVX2 inline __m256 scales(__m256 x) {
  return _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0xFF800000u))));
}

// The table entries t(s) for class sums s, as the linear kernels compute them (cpu_kernels_avx2.cpp).
template <int P>
APPROXSIM_AVX2 inline __m256 entries(const Coefficients& c, __m256 s) {
  __m256 t = _mm256_fmadd_ps(c.beta[0], s, c.alpha[0]);
  for (int p = 1; p < P; ++p)
    t = _mm256_blendv_ps(t, _mm256_fmadd_ps(c.beta[p], s, c.alpha[p]), _mm256_cmp_ps(s, c.theta[p], _CMP_GE_OQ));
  return t;
}

// The exponent range of n operands (approxsim_range_add for each, 8 at a time).
APPROXSIM_AVX2 Stats range_of(const float* p, int64_t n) {
  const __m256i ff = _mm256_set1_epi32(0xFF);
  __m256i hi = _mm256_setzero_si256(), lo = _mm256_set1_epi32(0xFF), special = _mm256_setzero_si256();
  int64_t q = 0;
  for (; q + 8 <= n; q += 8) {
    const __m256i e = _mm256_and_si256(_mm256_srli_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + q)),
                                                         23), ff);
    special = _mm256_or_si256(special, _mm256_cmpeq_epi32(e, ff));
    hi = _mm256_max_epu32(hi, e);
    lo = _mm256_min_epu32(lo, _mm256_blendv_epi8(e, ff, _mm256_cmpeq_epi32(e, _mm256_setzero_si256())));
  }
  alignas(32) uint32_t h[8], l[8], sp[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(h), hi);
  _mm256_store_si256(reinterpret_cast<__m256i*>(l), lo);
  _mm256_store_si256(reinterpret_cast<__m256i*>(sp), special);
  Stats s;
  for (int i = 0; i < 8; ++i) {
    if (sp[i]) s.special = 1;
    if (h[i] != 0) approxsim_range_add(&s, h[i] << 23);  // 255 only with special set
    if (l[i] != 0xFF) approxsim_range_add(&s, l[i] << 23);
  }
  for (; q < n; ++q) approxsim_range_add(&s, bits(p[q]));
  return s;
}

// Lanes of the channel block at c (8, or the tail of the channels).
struct Lanes {
  int n;
  __m256i mask;
};
APPROXSIM_AVX2 inline Lanes lanes(int64_t c, int64_t channels) {
  const int n = static_cast<int>(std::min<int64_t>(8, channels - c));
  return {n, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))};
}
APPROXSIM_AVX2 inline __m256 load(const float* p, const Lanes& l) {
  return l.n == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, l.mask);
}
APPROXSIM_AVX2 inline void store(float* p, __m256 v, const Lanes& l) {
  if (l.n == 8) {
    _mm256_storeu_ps(p, v);
  } else {
    _mm256_maskstore_ps(p, l.mask, v);
  }
}

// One output row (task = n * rows + p) of gather_taps.
template <int P>
APPROXSIM_AVX2 void gather_row(bool forward, const float* a, const float* wv, const float* ws, float* out,
                               const Geom& g, const Coefficients& co, int task) {
  const int64_t C = g.c;
  const int64_t rows = forward ? g.oh : g.h, cols = forward ? g.ow : g.w;  // of the output
  const int64_t in_rows = forward ? g.h : g.oh, in_cols = forward ? g.w : g.ow;
    const int64_t n = task / rows, p = task % rows;
    for (int64_t q = 0; q < cols; ++q) {
      float* dst = out + ((n * rows + p) * cols + q) * C;
      for (int64_t c = 0; c < C; c += 8) {
        const Lanes l = lanes(c, C);
        __m256 acc = _mm256_setzero_ps();
        for (int64_t i = 0; i < g.kh; ++i) {
          int64_t ip;  // the row of `a` for tap row i
          if (forward) {
            ip = p * g.sh - g.pad_top + i * g.dh;
          } else {
            const int64_t num = p + g.pad_top - i * g.dh;
            if (num < 0 || num % g.sh) continue;
            ip = num / g.sh;
          }
          if (ip < 0 || ip >= in_rows) continue;
          for (int64_t j = 0; j < g.kw; ++j) {
            int64_t iq;
            if (forward) {
              iq = q * g.sw - g.pad_left + j * g.dw;
            } else {
              const int64_t num = q + g.pad_left - j * g.dw;
              if (num < 0 || num % g.sw) continue;
              iq = num / g.sw;
            }
            if (iq < 0 || iq >= in_cols) continue;
            const __m256 x = load(a + ((n * in_rows + ip) * in_cols + iq) * C + c, l);
            const int64_t at = (i * g.kw + j) * C + c;
            const __m256 s = _mm256_add_ps(classes(x, co.ushift, co.umask), load(wv + at, l));
            acc = _mm256_fmadd_ps(entries<P>(co, s), _mm256_mul_ps(scales(x), load(ws + at, l)), acc);
          }
        }
        store(dst + c, acc, l);
      }
    }
}

// Forward and input gradient: out[n][p][q][c] = sum over the taps that reach it of a (*) w[tap][c],
// with the classes and scales of w precomputed per tap and channel.
template <int P>
APPROXSIM_AVX2 void gather_taps(DepthwiseOp op, const float* a, const float* w, float* out, const Geom& g,
                                const Table& t, int threads) {
  const Coefficients co = coefficients(t);
  const int64_t C = g.c, taps = g.kh * g.kw;
  std::vector<float> wv(taps * C), ws(taps * C);
  for (int64_t q = 0; q < taps * C; ++q) {
    const uint32_t u = bits(w[q]);
    wv[q] = static_cast<float>(((u >> (23 - t.m)) & ((1u << t.m) - 1)) >> t.lin.vshift);
    ws[q] = scale_of(u);
  }
  const bool forward = op == DepthwiseOp::kForward;
  const int64_t rows = forward ? g.oh : g.h;
  ThreadPool::instance().parallel_for(static_cast<int>(g.n * rows), threads, [&](int task) {
    gather_row<P>(forward, a, wv.data(), ws.data(), out, g, co, task);
  });
}

// Rows r0..r1 (of n * oh) of filter_grad, summed into acc[tap][c].
template <int P>
APPROXSIM_AVX2 void filter_chunk(const float* x, const float* dy, float* acc, const Geom& g, const Coefficients& co,
                                 int64_t r0, int64_t r1) {
  const int64_t C = g.c;
  for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / g.oh, p = r % g.oh;
      for (int64_t q = 0; q < g.ow; ++q) {
        const float* d = dy + ((n * g.oh + p) * g.ow + q) * C;
        for (int64_t i = 0; i < g.kh; ++i) {
          const int64_t ip = p * g.sh - g.pad_top + i * g.dh;
          if (ip < 0 || ip >= g.h) continue;
          for (int64_t j = 0; j < g.kw; ++j) {
            const int64_t iq = q * g.sw - g.pad_left + j * g.dw;
            if (iq < 0 || iq >= g.w) continue;
            const float* xp = x + ((n * g.h + ip) * g.w + iq) * C;
            float* ap = acc + (i * g.kw + j) * C;
            for (int64_t c = 0; c < C; c += 8) {
              const Lanes l = lanes(c, C);
              const __m256 xv = load(xp + c, l), dv = load(d + c, l);
              const __m256 s = _mm256_add_ps(classes(xv, co.ushift, co.umask), classes(dv, co.vshift, co.vmask));
              store(ap + c, _mm256_fmadd_ps(entries<P>(co, s), _mm256_mul_ps(scales(xv), scales(dv)), load(ap + c, l)),
                    l);
            }
          }
        }
      }
  }
}

// Filter gradient: dw[tap][c] = sum over n, output pixels of x[n][tap's pixel][c] (*) dy[n][pixel][c],
// in a fixed number of chunks of the output rows (sums independent of the thread count).
template <int P>
APPROXSIM_AVX2 void filter_grad(const float* x, const float* dy, float* dw, const Geom& g, const Table& t,
                                int threads) {
  const Coefficients co = coefficients(t);
  const int64_t C = g.c, taps = g.kh * g.kw, rows = g.n * g.oh;
  const int chunks = static_cast<int>(std::min<int64_t>(std::max<int64_t>(rows, 1), 64));
  std::vector<float> partial(size_t(chunks) * taps * C, 0.0f);
  ThreadPool::instance().parallel_for(chunks, threads, [&](int chunk) {
    filter_chunk<P>(x, dy, partial.data() + size_t(chunk) * taps * C, g, co, rows * chunk / chunks,
                    rows * (chunk + 1) / chunks);
  });
  for (int64_t q = 0; q < taps * C; ++q) {
    float s = 0.0f;
    for (int k = 0; k < chunks; ++k) s += partial[size_t(k) * taps * C + q];
    dw[q] = s;
  }
}

template <int P>
APPROXSIM_AVX2 void run(DepthwiseOp op, const float* a, const float* b, float* out, const Geom& g, const Table& t,
                        int threads) {
  if (op == DepthwiseOp::kFilterGrad) return filter_grad<P>(a, b, out, g, t, threads);
  gather_taps<P>(op, a, b, out, g, t, threads);
}

}  // namespace
#endif  // APPROXSIM_X86

bool depthwise(DepthwiseOp op, const float* a, const float* b, float* out, const Geom& g, const Table& t, int threads) {
#ifdef APPROXSIM_X86
  const LinearSum& lin = t.lin;
  if (g.groups != g.c || g.cout != g.c || t.m == 0 || !lin.valid || lin.ushift < 0 || lin.vshift < 0 ||
      simd_level() < kAvx2 || forced_method() >= 0)
    return false;
  const int64_t in = g.n * g.h * g.w * g.c, filt = g.kh * g.kw * g.c, outp = g.n * g.oh * g.ow * g.c;
  const int64_t a_size = op == DepthwiseOp::kInputGrad ? outp : in;
  const int64_t b_size = op == DepthwiseOp::kFilterGrad ? outp : filt;
  if (!float_domain_exact(t, range_of(a, a_size), range_of(b, b_size))) return false;
  switch (lin.pieces) {
    case 1: run<1>(op, a, b, out, g, t, threads); break;
    case 2: run<2>(op, a, b, out, g, t, threads); break;
    case 3: run<3>(op, a, b, out, g, t, threads); break;
    default: run<4>(op, a, b, out, g, t, threads); break;
  }
  note_method(Method::kLinear, false);
  return true;
#else
  (void)op, (void)a, (void)b, (void)out, (void)g, (void)t, (void)threads;
  return false;
#endif
}

}  // namespace approxsim
