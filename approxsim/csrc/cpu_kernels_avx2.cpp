// cpu_kernels_avx2.cpp: the AVX2 micro-kernels (MR = 4, NR = 16).
#include "cpu_isa.h"
#include "cpu_transpose.h"

#include <algorithm>

#ifdef APPROXSIM_X86
namespace approxsim {

APPROXSIM_AVX2 void table_avx2(int kc, int as, const int32_t* aoff, const float* asc, const void* bidx,
                                      const void*, const void*, const float* bsc, const Table& t, float* tile) {
  const int32_t* bj = static_cast<const int32_t*>(bidx);
  const float* T = t.f32.data();
  __m256 acc[4][2];
  for (int r = 0; r < 4; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int k = 0; k < kc; ++k) {
    const __m256i j0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bj + k * 16));
    const __m256i j1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bj + k * 16 + 8));
    const __m256 s0 = _mm256_loadu_ps(bsc + k * 16);
    const __m256 s1 = _mm256_loadu_ps(bsc + k * 16 + 8);
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      const float* row = T + aoff[r * as + k];
      const __m256 a = _mm256_broadcast_ss(asc + r * as + k);
      __m256 g0 = _mm256_i32gather_ps(row, j0, 4);
      __m256 g1 = _mm256_i32gather_ps(row, j1, 4);
      acc[r][0] = _mm256_fmadd_ps(_mm256_mul_ps(g0, s0), a, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(_mm256_mul_ps(g1, s1), a, acc[r][1]);
    }
  }
  for (int r = 0; r < 4; ++r) {
    _mm256_storeu_ps(tile + r * 16, acc[r][0]);
    _mm256_storeu_ps(tile + r * 16 + 8, acc[r][1]);
  }
}

APPROXSIM_AVX2 void exact_avx2(int kc, int as, const float* a, const float* b, float* tile) {
  __m256 acc[4][2];
  for (int r = 0; r < 4; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(b + k * 16), b1 = _mm256_loadu_ps(b + k * 16 + 8);
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      const __m256 x = _mm256_broadcast_ss(a + r * as + k);
      acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
    }
  }
  for (int r = 0; r < 4; ++r) {
    _mm256_storeu_ps(tile + r * 16, acc[r][0]);
    _mm256_storeu_ps(tile + r * 16 + 8, acc[r][1]);
  }
}


// ---------------------------------------------------------------------------------
// Lookup-free kernels (MR = 4, NR = 16)

// Linear-sum: the entry of s = u + v is fma(beta_p, s, alpha_p), then times scale(a) * scale(b); no
// table lookup. Piece p is the number of thresholds s reaches (they ascend: set_linear_sum), alpha_p
// and beta_p picked from vectors of the pieces' values by a permute.
template <int P>
APPROXSIM_AVX2 inline __m256 linear_entry(__m256 sum, __m256 alpha, __m256 beta, const __m256* th) {
  if constexpr (P == 1) {
    return _mm256_fmadd_ps(beta, sum, alpha);  // alpha and beta broadcast
  } else {
    __m256i piece = _mm256_setzero_si256();
    for (int p = 1; p < P; ++p)
      piece = _mm256_sub_epi32(piece, _mm256_castps_si256(_mm256_cmp_ps(sum, th[p], _CMP_GE_OQ)));
    return _mm256_fmadd_ps(_mm256_permutevar8x32_ps(beta, piece), sum, _mm256_permutevar8x32_ps(alpha, piece));
  }
}

// Linear-sum kernel, the 16 columns in two passes of 8 with named accumulators: with all 16 at once
// (and a blend per piece) the pieces' constants took the registers and GCC 12 kept the accumulators
// on the stack, loaded and stored twice at every step. Measured (AMD Zen 5, AVX2 level, 2 threads,
// medians of 7 in alternating builds): GEMM 1024^3 mbm11 (three pieces) 72.5-74.5 -> 56.7-61.7 ms;
// mitchell11 (two) 49-54 -> 47.5-56 ms, within the noise.
template <int P>
APPROXSIM_AVX2 void linear_avx2(int kc, int as, const float* au, const float* asc, const float* bv, const float* bsc,
                                const LinearSum& lin, float* tile) {
  __m256 alpha, beta, th[P > 1 ? P : 1];
  if constexpr (P == 1) {
    alpha = _mm256_set1_ps(lin.alpha[0]);
    beta = _mm256_set1_ps(lin.beta[0]);
  } else {
    static_assert(LinearSum::kMaxPieces <= 4, "the pieces' values are loaded as 4 lanes");
    alpha = _mm256_castps128_ps256(_mm_loadu_ps(lin.alpha));  // lanes 0..3: the pieces
    beta = _mm256_castps128_ps256(_mm_loadu_ps(lin.beta));
  }
  for (int p = 1; p < P; ++p) th[p] = _mm256_set1_ps(lin.theta[p]);
  for (int h = 0; h < 2; ++h) {
    __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
    const float* vb = bv + h * 8;
    const float* sb = bsc + h * 8;
    for (int k = 0; k < kc; ++k) {
      const __m256 v = _mm256_loadu_ps(vb + k * 16), s = _mm256_loadu_ps(sb + k * 16);
#define APPROXSIM_ROW(r)                                                                           \
  c##r = _mm256_fmadd_ps(linear_entry<P>(_mm256_add_ps(_mm256_broadcast_ss(au + r * as + k), v), alpha, beta, th), \
                         _mm256_mul_ps(_mm256_broadcast_ss(asc + r * as + k), s), c##r);
      APPROXSIM_ROW(0)
      APPROXSIM_ROW(1)
      APPROXSIM_ROW(2)
      APPROXSIM_ROW(3)
#undef APPROXSIM_ROW
    }
    _mm256_storeu_ps(tile + h * 8, c0);
    _mm256_storeu_ps(tile + 16 + h * 8, c1);
    _mm256_storeu_ps(tile + 32 + h * 8, c2);
    _mm256_storeu_ps(tile + 48 + h * 8, c3);
  }
}

#define APPROXSIM_LINEAR_PIECES(P)                                                                               \
  template APPROXSIM_AVX2 void linear_avx2<P>(int, int, const float*, const float*, const float*, const float*, \
                                              const LinearSum&, float*);
APPROXSIM_LINEAR_PIECES(1)
APPROXSIM_LINEAR_PIECES(2)
APPROXSIM_LINEAR_PIECES(3)
APPROXSIM_LINEAR_PIECES(4)
#undef APPROXSIM_LINEAR_PIECES

// Panel entries as 8 float lanes: float32 ones, or bfloat16 ones (the upper halves of float32
// values, for tables whose entries are all bfloat16: every scaled entry is too, exactly).
APPROXSIM_AVX2 inline __m256 panel8(const float* p) { return _mm256_loadu_ps(p); }
APPROXSIM_AVX2 inline __m256 panel8(const uint16_t* p) {
  return _mm256_castsi256_ps(
      _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
}
APPROXSIM_AVX2 inline void store_panel8(float* p, __m256 v) { _mm256_storeu_ps(p, v); }
APPROXSIM_AVX2 inline void store_panel8(uint16_t* p, __m256 v) {
  const __m256i hi = _mm256_srli_epi32(_mm256_castps_si256(v), 16);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                   _mm_packus_epi32(_mm256_castsi256_si128(hi), _mm256_extracti128_si256(hi, 1)));
}

// compact_row and compact_scale of the kc * kFreeMR A operands of a panel, 8 at a time (rows 2^log2_nr
// entries wide); a is padded: reads past the end stay inside it.
APPROXSIM_AVX2 inline void decode_a_avx2(int kc, const uint16_t* a, int m, int log2_nr, int32_t* arow, float* asc) {
  const __m256i low = _mm256_set1_epi32(0x7F), high = _mm256_set1_epi32(0xFF80);
  const __m128i rshift = _mm_cvtsi32_si128(7 - m), nshift = _mm_cvtsi32_si128(log2_nr);
  const int n = kc * kFreeMR;
  for (int q = 0; q < n; q += 8) {
    const __m256i e = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + q)));
    const __m256i row = _mm256_sll_epi32(_mm256_srl_epi32(_mm256_and_si256(e, low), rshift), nshift);
    _mm256_store_si256(reinterpret_cast<__m256i*>(arow + q), row);
    _mm256_store_ps(asc + q, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_and_si256(e, high), 16)));
  }
}

// Expanded operand: a row of A selects a contiguous row of the panel; broadcast-FMA, no gather.
// The two-byte A operands are first decoded into row offsets and scales (in L1).
template <class E>
APPROXSIM_AVX2 void expanded_avx2_t(int kc, const uint16_t* a, int m, const E* bx, float* acc) {
  alignas(32) int32_t arow[kExpandedMaxKc * kFreeMR + 8];
  alignas(32) float asc[kExpandedMaxKc * kFreeMR + 8];
  decode_a_avx2(kc, a, m, 4, arow, asc);
  __m256 c00 = _mm256_loadu_ps(acc), c01 = _mm256_loadu_ps(acc + 8), c10 = _mm256_loadu_ps(acc + 16);
  __m256 c11 = _mm256_loadu_ps(acc + 24), c20 = _mm256_loadu_ps(acc + 32), c21 = _mm256_loadu_ps(acc + 40);
  __m256 c30 = _mm256_loadu_ps(acc + 48), c31 = _mm256_loadu_ps(acc + 56);
  const size_t slab = size_t(16) << m;  // entries of one contraction step of the panel
  for (int k = 0; k < kc; ++k) {
    const E* kb = bx + k * slab;
    const int32_t* ar = arow + 4 * k;
    const float* sc = asc + 4 * k;
    const E* p0 = kb + ar[0];
    const E* p1 = kb + ar[1];
    const E* p2 = kb + ar[2];
    const E* p3 = kb + ar[3];
    const __m256 s0 = _mm256_broadcast_ss(sc), s1 = _mm256_broadcast_ss(sc + 1);
    const __m256 s2 = _mm256_broadcast_ss(sc + 2), s3 = _mm256_broadcast_ss(sc + 3);
    c00 = _mm256_fmadd_ps(panel8(p0), s0, c00);
    c01 = _mm256_fmadd_ps(panel8(p0 + 8), s0, c01);
    c10 = _mm256_fmadd_ps(panel8(p1), s1, c10);
    c11 = _mm256_fmadd_ps(panel8(p1 + 8), s1, c11);
    c20 = _mm256_fmadd_ps(panel8(p2), s2, c20);
    c21 = _mm256_fmadd_ps(panel8(p2 + 8), s2, c21);
    c30 = _mm256_fmadd_ps(panel8(p3), s3, c30);
    c31 = _mm256_fmadd_ps(panel8(p3 + 8), s3, c31);
  }
  _mm256_storeu_ps(acc, c00);
  _mm256_storeu_ps(acc + 8, c01);
  _mm256_storeu_ps(acc + 16, c10);
  _mm256_storeu_ps(acc + 24, c11);
  _mm256_storeu_ps(acc + 32, c20);
  _mm256_storeu_ps(acc + 40, c21);
  _mm256_storeu_ps(acc + 48, c30);
  _mm256_storeu_ps(acc + 56, c31);
}

APPROXSIM_AVX2 void expanded_avx2(int kc, const uint16_t* a, int m, const float* bx, float* acc) {
  expanded_avx2_t(kc, a, m, bx, acc);
}
// bfloat16 panels of 16 columns: one 32-byte row gives the even columns as floats by a shift of each
// 32-bit word (its low bfloat16) and the odd ones by a mask (its high one): no widening shuffle. The
// accumulators (named: GCC spills an array of them) hold even and odd columns, split from acc and
// merged back by shuffles once per call.
APPROXSIM_AVX2 void expanded_bf16_avx2(int kc, const uint16_t* a, int m, const uint16_t* bx, float* acc) {
  alignas(32) int32_t arow[kExpandedMaxKc * kFreeMR + 8];
  alignas(32) float asc[kExpandedMaxKc * kFreeMR + 8];
  decode_a_avx2(kc, a, m, 4, arow, asc);
  __m256 e0, o0, e1, o1, e2, o2, e3, o3;
  split_even_odd8(acc, e0, o0);
  split_even_odd8(acc + 16, e1, o1);
  split_even_odd8(acc + 32, e2, o2);
  split_even_odd8(acc + 48, e3, o3);
  const __m256i high = _mm256_set1_epi32(static_cast<int>(0xFFFF0000u));
  const size_t slab = size_t(16) << m;
  for (int k = 0; k < kc; ++k) {
    const uint16_t* kb = bx + k * slab;
    const int32_t* ar = arow + 4 * k;
    const float* sc = asc + 4 * k;
#define APPROXSIM_ROW(r, e, o)                                                                    \
  {                                                                                               \
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kb + ar[r]));           \
    const __m256 s = _mm256_broadcast_ss(sc + r);                                                 \
    e = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 16)), s, e);                     \
    o = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v, high)), s, o);                    \
  }
    APPROXSIM_ROW(0, e0, o0)
    APPROXSIM_ROW(1, e1, o1)
    APPROXSIM_ROW(2, e2, o2)
    APPROXSIM_ROW(3, e3, o3)
#undef APPROXSIM_ROW
  }
  merge_even_odd8(e0, o0, acc);
  merge_even_odd8(e1, o1, acc + 16);
  merge_even_odd8(e2, o2, acc + 32);
  merge_even_odd8(e3, o3, acc + 48);
}

// bfloat16 panels of 32 columns (kWideNR): a panel row is one 64-byte line (two 32-byte loads, even
// and odd columns as in expanded_bf16_avx2), so that every line brought from L2 serves 32 columns
// rather than 16 and each scale is broadcast for 32. Eight accumulators hold two rows (GCC spills
// more), so the call sweeps its contraction steps twice: rows 0 and 1, then rows 2 and 3.
// Measured (AMD Zen 5 at the AVX2 level, GEMM 1024^3 mbm7, best of alternating runs): one thread
// 39.6-40.2 -> 34.9-36.9 ms, two threads 21.0-21.1 -> 18.8-19.4 ms against 16-column panels.
APPROXSIM_AVX2 void expanded32_bf16_avx2(int kc, const uint16_t* a, int m, const uint16_t* bx, float* acc) {
  alignas(32) int32_t arow[kExpandedMaxKc * kFreeMR + 8];
  alignas(32) float asc[kExpandedMaxKc * kFreeMR + 8];
  decode_a_avx2(kc, a, m, 5, arow, asc);
  const __m256i high = _mm256_set1_epi32(static_cast<int>(0xFFFF0000u));
  const size_t slab = size_t(kWideNR) << m;
  for (int r0 = 0; r0 < kFreeMR; r0 += 2) {
    float* c0 = acc + r0 * kWideNR;
    float* c1 = c0 + kWideNR;
    __m256 e0, o0, f0, p0, e1, o1, f1, p1;  // row r0 + q: columns 0-15 in e_q / o_q, 16-31 in f_q / p_q
    split_even_odd8(c0, e0, o0);
    split_even_odd8(c0 + 16, f0, p0);
    split_even_odd8(c1, e1, o1);
    split_even_odd8(c1 + 16, f1, p1);
    for (int k = 0; k < kc; ++k) {
      const uint16_t* kb = bx + k * slab;
      const int32_t* ar = arow + 4 * k + r0;
      const float* sc = asc + 4 * k + r0;
#define APPROXSIM_ROW(q)                                                                                  \
  {                                                                                                       \
    const uint16_t* row = kb + ar[q];                                                                     \
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row));                          \
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 16));                     \
    const __m256 s = _mm256_broadcast_ss(sc + q);                                                         \
    e##q = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 16)), s, e##q);                       \
    o##q = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v, high)), s, o##q);                      \
    f##q = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(w, 16)), s, f##q);                       \
    p##q = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(w, high)), s, p##q);                      \
  }
      APPROXSIM_ROW(0)
      APPROXSIM_ROW(1)
#undef APPROXSIM_ROW
    }
    merge_even_odd8(e0, o0, c0);
    merge_even_odd8(f0, p0, c0 + 16);
    merge_even_odd8(e1, o1, c1);
    merge_even_odd8(f1, p1, c1 + 16);
  }
}

// One contraction step of the 4 rows of an 8-column panel: row r's panel row times its scale into a_r.
template <class E>
APPROXSIM_AVX2 inline void narrow_step(const E* kb, const int32_t* ar, const float* sc, __m256& a0, __m256& a1,
                                       __m256& a2, __m256& a3) {
  a0 = _mm256_fmadd_ps(panel8(kb + ar[0]), _mm256_broadcast_ss(sc), a0);
  a1 = _mm256_fmadd_ps(panel8(kb + ar[1]), _mm256_broadcast_ss(sc + 1), a1);
  a2 = _mm256_fmadd_ps(panel8(kb + ar[2]), _mm256_broadcast_ss(sc + 2), a2);
  a3 = _mm256_fmadd_ps(panel8(kb + ar[3]), _mm256_broadcast_ss(sc + 3), a3);
}

// Expanded operand, 8-column panels: one vector per row and step. The even and the odd contraction
// steps sum into separate accumulators (8 chains of FMAs in flight rather than 4), added at the end.
template <class E>
APPROXSIM_AVX2 void expanded8_avx2_t(int kc, const uint16_t* a, int m, const E* bx, float* acc) {
  alignas(32) int32_t arow[kExpandedMaxKc * kFreeMR + 8];
  alignas(32) float asc[kExpandedMaxKc * kFreeMR + 8];
  decode_a_avx2(kc, a, m, 3, arow, asc);
  __m256 c0 = _mm256_loadu_ps(acc), c1 = _mm256_loadu_ps(acc + 8);
  __m256 c2 = _mm256_loadu_ps(acc + 16), c3 = _mm256_loadu_ps(acc + 24);
  __m256 d0 = _mm256_setzero_ps(), d1 = _mm256_setzero_ps(), d2 = _mm256_setzero_ps(), d3 = _mm256_setzero_ps();
  const size_t slab = size_t(kNarrowNR) << m;
  int k = 0;
  for (; k + 2 <= kc; k += 2) {
    narrow_step(bx + k * slab, arow + 4 * k, asc + 4 * k, c0, c1, c2, c3);
    narrow_step(bx + (k + 1) * slab, arow + 4 * k + 4, asc + 4 * k + 4, d0, d1, d2, d3);
  }
  if (k < kc) narrow_step(bx + k * slab, arow + 4 * k, asc + 4 * k, d0, d1, d2, d3);
  _mm256_storeu_ps(acc, _mm256_add_ps(c0, d0));
  _mm256_storeu_ps(acc + 8, _mm256_add_ps(c1, d1));
  _mm256_storeu_ps(acc + 16, _mm256_add_ps(c2, d2));
  _mm256_storeu_ps(acc + 24, _mm256_add_ps(c3, d3));
}

APPROXSIM_AVX2 void expanded8_avx2(int kc, const uint16_t* a, int m, const float* bx, float* acc) {
  expanded8_avx2_t(kc, a, m, bx, acc);
}
APPROXSIM_AVX2 void expanded8_bf16_avx2(int kc, const uint16_t* a, int m, const uint16_t* bx, float* acc) {
  expanded8_avx2_t(kc, a, m, bx, acc);
}

// The stats of operands 8 at a time, in biased exponents e: the maximum of e (255 is an Inf or NaN:
// the panel is special, and its range no longer matters) and the unsigned minimum of e - 1 (a zero or
// subnormal operand, e = 0, wraps to the top and never counts): 5 operations per 8 operands.
struct RangeAvx2 {
  __m256i vmin, vmax;
  APPROXSIM_AVX2 RangeAvx2() : vmin(_mm256_set1_epi32(-1)), vmax(_mm256_setzero_si256()) {}
  // Adds 8 operands; returns their biased exponents.
  APPROXSIM_AVX2 __m256i add(__m256i u) {
    const __m256i e = _mm256_and_si256(_mm256_srli_epi32(u, 23), _mm256_set1_epi32(0xFF));
    vmax = _mm256_max_epu32(vmax, e);
    vmin = _mm256_min_epu32(vmin, _mm256_sub_epi32(e, _mm256_set1_epi32(1)));
    return e;
  }
  APPROXSIM_AVX2 void into(Stats& s) const {
    alignas(32) uint32_t lmin[8], lmax[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lmin), vmin);
    _mm256_store_si256(reinterpret_cast<__m256i*>(lmax), vmax);
    uint32_t lo = 0xFFFFFFFFu, hi = 0;
    for (int q = 0; q < 8; ++q) {
      lo = std::min(lo, lmin[q]);
      hi = std::max(hi, lmax[q]);
    }
    if (hi == 0xFF) s.special = 1;
    else if (hi != 0 && int(hi) - 127 > s.emax) s.emax = int(hi) - 127;
    if (lo != 0xFFFFFFFFu && int(lo) + 1 - 127 < s.emin) s.emin = int(lo) + 1 - 127;
  }
};

// compact_a4: 8 contraction steps of the 4 rows at a time. The top halves of rows 0/1 and 2/3 are
// paired into 32-bit words, and the two pairs interleaved into k-major order (4 x 16 bits per k).
APPROXSIM_AVX2 void compact_a4_avx2(const float* raw, int64_t stride, int n, uint16_t* dst, Stats& s) {
  static_assert(kFreeMR == 4, "four rows per A panel");
  const __m256i top = _mm256_set1_epi32(static_cast<int>(0xFFFF0000u));
  RangeAvx2 range;
  int k = 0;
  for (; k + 8 <= n; k += 8) {
    __m256i u[4];
    for (int r = 0; r < 4; ++r) {
      u[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(raw + r * stride + k));
      range.add(u[r]);
    }
    const __m256i w01 = _mm256_or_si256(_mm256_srli_epi32(u[0], 16), _mm256_and_si256(u[1], top));
    const __m256i w23 = _mm256_or_si256(_mm256_srli_epi32(u[2], 16), _mm256_and_si256(u[3], top));
    const __m256i lo = _mm256_unpacklo_epi32(w01, w23), hi = _mm256_unpackhi_epi32(w01, w23);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + k * 4), _mm256_permute2x128_si256(lo, hi, 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + k * 4 + 16), _mm256_permute2x128_si256(lo, hi, 0x31));
  }
  range.into(s);
  if (k < n) compact_a4_scalar(raw + k, stride, n - k, dst + k * 4, s);
}

// convert_linear: 8 operands at a time; the classes shifted out of the bits, or gathered from the
// 2^M-entry class table (L1).
APPROXSIM_AVX2 void convert_linear_avx2(float* raw, int n, int m, const float* cls, int cls_shift, float* sc,
                                        Stats& s) {
  const __m128i shift = _mm_cvtsi32_si128(23 - m);
  const __m256i imask = _mm256_set1_epi32(static_cast<int>((1u << m) - 1));
  const bool shifted = cls_shift >= 0;  // the class is i >> cls_shift: from the bits, no gather
  const __m128i cshift = _mm_cvtsi32_si128(shifted ? 23 - m + cls_shift : 0);
  const __m256i cmask = _mm256_set1_epi32(static_cast<int>(((1u << m) - 1) >> (shifted ? cls_shift : 0)));
  const __m256i sign = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  const __m256i sign_exp = _mm256_set1_epi32(static_cast<int>(0xFF800000u));
  RangeAvx2 range;
  int q = 0;
  for (; q + 8 <= n; q += 8) {
    const __m256i u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(raw + q));
    const __m256i e = range.add(u);
    const __m256i zero_exp = _mm256_cmpeq_epi32(e, _mm256_setzero_si256());
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(sc + q),
                        _mm256_and_si256(u, _mm256_blendv_epi8(sign_exp, sign, zero_exp)));
    if (shifted) {
      _mm256_storeu_ps(raw + q, _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srl_epi32(u, cshift), cmask)));
    } else {
      const __m256i i = _mm256_and_si256(_mm256_srl_epi32(u, shift), imask);
      _mm256_storeu_ps(raw + q, _mm256_i32gather_ps(cls, i, 4));
    }
  }
  range.into(s);
  if (q < n) convert_linear_scalar(raw + q, n - q, m, cls, cls_shift, sc + q, s);
}

// Builds an expanded panel from the transposed table: for 8 columns at a time, 8 table columns
// (contiguous over i) are transposed in 8x8 blocks into rows of the panel and scaled.
template <int NR, class E>
APPROXSIM_AVX2 void expand_build_avx2_t(const float* raw, int kc, const Table& t, E* bx, Stats& s) {
  const int m = t.m, p = t.prow, side = 1 << p;
  const int shift = 23 - m;
  const uint32_t imask = (1u << m) - 1;
  const float* cols = t.cols.data();
  for (int k = 0; k < kc; ++k) {
    for (int c0 = 0; c0 < NR; c0 += 8) {
      const float* col[8];
      alignas(32) float sb[8];
      for (int q = 0; q < 8; ++q) {
        const uint32_t u = bits(raw[k * NR + c0 + q]);
        account(u, s);
        col[q] = cols + (size_t((u >> shift) & imask) << p);
        sb[q] = scale_of(u);
      }
      const __m256 scale = _mm256_load_ps(sb);
      if (side < 8) {  // fewer rows than a transpose block: one row at a time
        for (int i = 0; i < side; ++i) {
          alignas(32) float row[8];
          for (int q = 0; q < 8; ++q) row[q] = col[q][i];
          store_panel8(bx + ((size_t(k) << p) + i) * NR + c0, _mm256_mul_ps(_mm256_load_ps(row), scale));
        }
        continue;
      }
      for (int i0 = 0; i0 < side; i0 += 8) {
        __m256 r[8];
        for (int q = 0; q < 8; ++q) r[q] = _mm256_loadu_ps(col[q] + i0);
        transpose8(r);
        for (int q = 0; q < 8; ++q)
          store_panel8(bx + ((size_t(k) << p) + i0 + q) * NR + c0, _mm256_mul_ps(r[q], scale));
      }
    }
  }
}

template <int NR>
APPROXSIM_AVX2 void expand_build_avx2(const float* raw, int kc, const Table& t, float* bx, Stats& s) {
  expand_build_avx2_t<NR>(raw, kc, t, bx, s);
}
template <int NR>
APPROXSIM_AVX2 void expand_build_bf16_avx2(const float* raw, int kc, const Table& t, uint16_t* bx, Stats& s) {
  expand_build_avx2_t<NR>(raw, kc, t, bx, s);
}

// The bfloat16 panel by integer words, for tables of normal bfloat16 entries (Table::cols16): a
// scaled entry T * (+-2^E) is the entry's word plus E << 7 (its exponent field) plus 0x8000 for a
// negative operand (its sign), modulo 2^16, wherever the panel's range check keeps it normal; zero
// and subnormal operands give 0. 8 table columns (contiguous over i, 16-bit) at a time are transposed
// in blocks of 16 entries into half rows of the panel, one add and one mask per pair of half rows: no
// float multiply, no narrowing.
template <int NR>
APPROXSIM_AVX2 void expand_build_words_avx2(const float* raw, int kc, const Table& t, uint16_t* bx, Stats& s) {
  const int m = t.m, p = t.prow, side = 1 << p, shift = 23 - m;
  const uint32_t imask = (1u << m) - 1;
  const uint16_t* cols = t.cols16.data();
  const __m128i sh = _mm_cvtsi32_si128(shift), mv = _mm_cvtsi32_si128(p);
  const __m256i im = _mm256_set1_epi32(static_cast<int>(imask)), bias = _mm256_set1_epi32(127);
  const __m256i low16 = _mm256_set1_epi32(0xFFFF);
  RangeAvx2 range;
  for (int k = 0; k < kc; ++k) {
    uint16_t* slab = bx + (size_t(k) << p) * NR;
    for (int h = 0; h < NR / 8; ++h) {  // 8 columns at a time: both lanes of a transposed vector
      // The 8 operands' columns, and their words to add and masks (16-bit, the same in both lanes).
      const __m256i u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(raw + k * NR + h * 8));
      const __m256i e = range.add(u);
      alignas(32) int32_t off[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(off),
                         _mm256_sll_epi32(_mm256_and_si256(_mm256_srl_epi32(u, sh), im), mv));
      const __m256i exponent = _mm256_slli_epi32(_mm256_sub_epi32(e, bias), 7);
      const __m256i sign = _mm256_slli_epi32(_mm256_srli_epi32(u, 31), 15);
      const __m256i ext = _mm256_and_si256(_mm256_add_epi32(exponent, sign), low16);
      const __m256i keep = _mm256_andnot_si256(_mm256_cmpeq_epi32(e, _mm256_setzero_si256()), low16);
      const __m256i ev = _mm256_permute4x64_epi64(_mm256_packus_epi32(ext, ext), 0x88);
      const __m256i kv = _mm256_permute4x64_epi64(_mm256_packus_epi32(keep, keep), 0x88);
      const uint16_t* col[8];
      for (int q = 0; q < 8; ++q) col[q] = cols + off[q];
      for (int i0 = 0; i0 < side; i0 += 16) {
        __m256i r[8], c[8];  // c[x]: lane 0 = panel row i0 + x, lane 1 = row i0 + 8 + x
        for (int q = 0; q < 8; ++q) r[q] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(col[q] + i0));
        transpose16_lanes(r, c);
        uint16_t* dst = slab + size_t(i0) * NR + h * 8;
#pragma GCC unroll 8
        for (int x = 0; x < 8; ++x) {
          const __m256i v = _mm256_and_si256(_mm256_add_epi16(c[x], ev), kv);
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + x * NR), _mm256_castsi256_si128(v));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (8 + x) * NR), _mm256_extracti128_si256(v, 1));
        }
      }
    }
  }
  range.into(s);
}

#define APPROXSIM_EXPAND_BUILDS(NR)                                                                    \
  template APPROXSIM_AVX2 void expand_build_avx2<NR>(const float*, int, const Table&, float*, Stats&);        \
  template APPROXSIM_AVX2 void expand_build_bf16_avx2<NR>(const float*, int, const Table&, uint16_t*, Stats&); \
  template APPROXSIM_AVX2 void expand_build_words_avx2<NR>(const float*, int, const Table&, uint16_t*, Stats&);
APPROXSIM_EXPAND_BUILDS(kFreeNR)
APPROXSIM_EXPAND_BUILDS(kNarrowNR)
APPROXSIM_EXPAND_BUILDS(kWideNR)
#undef APPROXSIM_EXPAND_BUILDS

}  // namespace approxsim
#endif  // APPROXSIM_X86
