// cpu_kernels_avx512.cpp: the AVX-512 micro-kernels (gather, bf16 permute, VBMI byte permute) and
// panel conversions.
#include "cpu_isa.h"
#include "cpu_transpose.h"

#ifdef APPROXSIM_X86
namespace approxsim {


APPROXSIM_AVX512 void table_avx512_gather(int kc, int as, const int32_t* aoff, const float* asc, const void* bidx,
                                                 const void*, const void*, const float* bsc, const Table& t, float* tile) {
  const int32_t* bj = static_cast<const int32_t*>(bidx);
  const float* T = t.f32.data();
  __m512 acc[8][2];
  for (int r = 0; r < 8; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int k = 0; k < kc; ++k) {
    const __m512i j0 = _mm512_loadu_si512(bj + k * 32);
    const __m512i j1 = _mm512_loadu_si512(bj + k * 32 + 16);
    const __m512 s0 = _mm512_loadu_ps(bsc + k * 32);
    const __m512 s1 = _mm512_loadu_ps(bsc + k * 32 + 16);
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r) {
      const float* row = T + aoff[r * as + k];
      const __m512 a = _mm512_set1_ps(asc[r * as + k]);
      __m512 g0 = _mm512_i32gather_ps(j0, row, 4);
      __m512 g1 = _mm512_i32gather_ps(j1, row, 4);
      acc[r][0] = _mm512_fmadd_ps(_mm512_mul_ps(g0, s0), a, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(_mm512_mul_ps(g1, s1), a, acc[r][1]);
    }
  }
  for (int r = 0; r < 8; ++r) {
    _mm512_storeu_ps(tile + r * 32, acc[r][0]);
    _mm512_storeu_ps(tile + r * 32 + 16, acc[r][1]);
  }
}

// Permute kernel: a table row of 16-bit (bfloat16) entries lives in 1, 2 or 4
// registers and vpermw/vpermt2w look up 32 columns at once (W = M <= 5, 6, 7).
// bidx holds the 32 column indices per k in the word order that makes
// unpacklo/unpackhi(0, t) yield columns 0..15 and 16..31 as float32 (bf16 << 16);
// bmask holds bit 6 of each index (M = 7: which half of the row).
template <int W>
APPROXSIM_AVX512 void table_avx512_permute(int kc, int as, const int32_t* aoff, const float* asc, const void* bidx,
                                                  const void*, const void* bmask_, const float* bsc, const Table& t,
                                                  float* tile) {
  const uint16_t* bj = static_cast<const uint16_t*>(bidx);
  const uint32_t* bmask = static_cast<const uint32_t*>(bmask_);
  const uint16_t* T = t.bf16.data();
  const __m512i zero = _mm512_setzero_si512();
  __m512 acc[8][2];
  for (int r = 0; r < 8; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int k = 0; k < kc; ++k) {
    const __m512i idx = _mm512_loadu_si512(bj + k * 32);
    const __mmask32 hi_half = W == 7 ? static_cast<__mmask32>(bmask[k]) : 0;
    const __m512 s0 = _mm512_loadu_ps(bsc + k * 32);
    const __m512 s1 = _mm512_loadu_ps(bsc + k * 32 + 16);
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r) {
      const uint16_t* row = T + aoff[r * as + k];
      __m512i v;
      if (W <= 5) {
        v = _mm512_permutexvar_epi16(idx, _mm512_loadu_si512(row));
      } else if (W == 6) {
        v = _mm512_permutex2var_epi16(_mm512_loadu_si512(row), idx, _mm512_loadu_si512(row + 32));
      } else {
        __m512i lo = _mm512_permutex2var_epi16(_mm512_loadu_si512(row), idx, _mm512_loadu_si512(row + 32));
        __m512i hi = _mm512_permutex2var_epi16(_mm512_loadu_si512(row + 64), idx, _mm512_loadu_si512(row + 96));
        v = _mm512_mask_blend_epi16(hi_half, lo, hi);
      }
      const __m512 g0 = _mm512_castsi512_ps(_mm512_unpacklo_epi16(zero, v));
      const __m512 g1 = _mm512_castsi512_ps(_mm512_unpackhi_epi16(zero, v));
      const __m512 a = _mm512_set1_ps(asc[r * as + k]);
      acc[r][0] = _mm512_fmadd_ps(_mm512_mul_ps(g0, s0), a, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(_mm512_mul_ps(g1, s1), a, acc[r][1]);
    }
  }
  for (int r = 0; r < 8; ++r) {
    _mm512_storeu_ps(tile + r * 32, acc[r][0]);
    _mm512_storeu_ps(tile + r * 32 + 16, acc[r][1]);
  }
}

// Byte-permute kernel (VBMI, MR = 4, NR = 64), for bf16-exact tables of normal entries with
// M <= 7: vpermt2b looks up the low and the high bytes of 64 entries of a table row (two
// 128-byte planes), the bytes are interleaved into bf16 words, the exponent and sign of the
// B operand are added to each word as integers (the range check of the driver keeps the
// exponent field in 1..254; zero operands are masked to 0), and the words widen to float32.
APPROXSIM_VBMI void table_avx512_bytes(int kc, int as, const int32_t* aoff, const float* asc, const void* bidx,
                                              const void* bext, const void* bmask_, const float*, const Table& t,
                                              float* tile) {
  const uint8_t* bj = static_cast<const uint8_t*>(bidx);
  const uint16_t* ew = static_cast<const uint16_t*>(bext);
  const uint64_t* bmask = static_cast<const uint64_t*>(bmask_);
  const uint8_t* T = t.planes.data();
  const __m512i zero = _mm512_setzero_si512();
  __m512 acc[4][4];
  for (int r = 0; r < 4; ++r) acc[r][0] = acc[r][1] = acc[r][2] = acc[r][3] = _mm512_setzero_ps();
  for (int k = 0; k < kc; ++k) {
    const __m512i idx = _mm512_loadu_si512(bj + k * 64);
    const __m512i e0 = _mm512_loadu_si512(ew + k * 64);
    const __m512i e1 = _mm512_loadu_si512(ew + k * 64 + 32);
    const uint64_t mk = bmask[k];
    const __mmask32 k0 = static_cast<__mmask32>(mk), k1 = static_cast<__mmask32>(mk >> 32);
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      const uint8_t* row = T + aoff[r * as + k];
      const __m512i lo = _mm512_permutex2var_epi8(_mm512_loadu_si512(row), idx, _mm512_loadu_si512(row + 64));
      const __m512i hi =
          _mm512_permutex2var_epi8(_mm512_loadu_si512(row + 128), idx, _mm512_loadu_si512(row + 192));
      const __m512i w0 = _mm512_maskz_add_epi16(k0, _mm512_unpacklo_epi8(lo, hi), e0);
      const __m512i w1 = _mm512_maskz_add_epi16(k1, _mm512_unpackhi_epi8(lo, hi), e1);
      const __m512 a = _mm512_set1_ps(asc[r * as + k]);
      acc[r][0] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_unpacklo_epi16(zero, w0)), a, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_unpackhi_epi16(zero, w0)), a, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_unpacklo_epi16(zero, w1)), a, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_unpackhi_epi16(zero, w1)), a, acc[r][3]);
    }
  }
  for (int r = 0; r < 4; ++r)
    for (int q = 0; q < 4; ++q) _mm512_storeu_ps(tile + r * 64 + q * 16, acc[r][q]);
}

APPROXSIM_AVX512 void exact_avx512(int kc, int as, const float* a, const float* b, float* tile) {
  __m512 acc[8][2];
  for (int r = 0; r < 8; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(b + k * 32), b1 = _mm512_loadu_ps(b + k * 32 + 16);
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r) {
      const __m512 x = _mm512_set1_ps(a[r * as + k]);
      acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
    }
  }
  for (int r = 0; r < 8; ++r) {
    _mm512_storeu_ps(tile + r * 32, acc[r][0]);
    _mm512_storeu_ps(tile + r * 32 + 16, acc[r][1]);
  }
}

APPROXSIM_AVX512 void convert_a_avx512(const float* raw, int n, int m, int aoff_shift, int32_t* off,
                                              float* sc, Stats& s) {
  const __m128i shift = _mm_cvtsi32_si128(23 - m), ashift = _mm_cvtsi32_si128(aoff_shift);
  const __m512i imask = _mm512_set1_epi32(static_cast<int>((1u << m) - 1)), ff = _mm512_set1_epi32(0xFF);
  const __m512i sign_exp = _mm512_set1_epi32(static_cast<int>(0xFF800000u));
  const __m512i sign = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  __m512i vmin = _mm512_set1_epi32(1000), vmax = _mm512_set1_epi32(-1000);
  __mmask16 special = 0;
  for (int q = 0; q < n; q += 16) {
    const __mmask16 tail = n - q >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (n - q)) - 1);
    const __m512i u = _mm512_maskz_loadu_epi32(tail, raw + q);
    const __m512i e = _mm512_and_si512(_mm512_srli_epi32(u, 23), ff);
    const __mmask16 nz = _mm512_test_epi32_mask(e, e);
    const __mmask16 sp = _mm512_cmpeq_epi32_mask(e, ff);
    special |= sp;
    const __mmask16 normal = nz & static_cast<__mmask16>(~sp);
    const __m512i eu = _mm512_sub_epi32(e, _mm512_set1_epi32(127));
    vmin = _mm512_mask_min_epi32(vmin, normal, vmin, eu);
    vmax = _mm512_mask_max_epi32(vmax, normal, vmax, eu);
    if (m == 0) {
      _mm512_mask_storeu_epi32(sc + q, tail, u);
    } else {
      const __m512i i = _mm512_and_si512(_mm512_srl_epi32(u, shift), imask);
      _mm512_mask_storeu_epi32(off + q, tail, _mm512_maskz_mov_epi32(nz, _mm512_sll_epi32(i, ashift)));
      const __m512i scale = _mm512_and_si512(u, _mm512_mask_blend_epi32(nz, sign, sign_exp));
      _mm512_mask_storeu_epi32(sc + q, tail, scale);
    }
  }
  if (special) s.special = true;
  const int lo = _mm512_reduce_min_epi32(vmin), hi = _mm512_reduce_max_epi32(vmax);
  if (lo < s.emin) s.emin = lo;
  if (hi > s.emax) s.emax = hi;
}

APPROXSIM_AVX512_BMI2 void convert_b_bytes8_avx512(const float* raw, int m, uint8_t* idx, uint16_t* ext,
                                                          uint64_t* mask, Stats& s) {
  const __m128i shift = _mm_cvtsi32_si128(23 - m);
  const __m512i imask = _mm512_set1_epi32(static_cast<int>((1u << m) - 1)), ff = _mm512_set1_epi32(0xFF);
  __m512i vmin = _mm512_set1_epi32(1000), vmax = _mm512_set1_epi32(-1000);
  __mmask16 special = 0;
  __m128i jb[4];
  __m256i xw[4];
  uint32_t nzm[4];
  for (int f = 0; f < 4; ++f) {
    const __m512i u = _mm512_loadu_si512(raw + 16 * f);
    const __m512i e = _mm512_and_si512(_mm512_srli_epi32(u, 23), ff);
    const __mmask16 nz = _mm512_test_epi32_mask(e, e);
    const __mmask16 sp = _mm512_cmpeq_epi32_mask(e, ff);
    special |= sp;
    const __m512i eu = _mm512_sub_epi32(e, _mm512_set1_epi32(127));
    vmin = _mm512_mask_min_epi32(vmin, nz & static_cast<__mmask16>(~sp), vmin, eu);
    vmax = _mm512_mask_max_epi32(vmax, nz & static_cast<__mmask16>(~sp), vmax, eu);
    jb[f] = _mm512_cvtepi32_epi8(_mm512_and_si512(_mm512_srl_epi32(u, shift), imask));
    const __m512i x = _mm512_add_epi32(_mm512_slli_epi32(eu, 7), _mm512_slli_epi32(_mm512_srli_epi32(u, 31), 15));
    xw[f] = _mm512_cvtepi32_epi16(x);
    nzm[f] = nz;
  }
  // Bytes: dword 4f + l (columns 16f + 4l + 0..3) goes to dword 4l + f (byte_pos).
  __m512i j = _mm512_castsi128_si512(jb[0]);
  j = _mm512_inserti32x4(j, jb[1], 1);
  j = _mm512_inserti32x4(j, jb[2], 2);
  j = _mm512_inserti32x4(j, jb[3], 3);
  const __m512i dperm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  _mm512_storeu_si512(idx, _mm512_permutexvar_epi32(dperm, j));
  // Words: qword 4f' + l of a pair (f' = f & 1) goes to qword 2l + f' (word_pos).
  const __m512i qperm = _mm512_setr_epi64(0, 4, 1, 5, 2, 6, 3, 7);
  const __m512i w0 = _mm512_inserti64x4(_mm512_castsi256_si512(xw[0]), xw[1], 1);
  const __m512i w1 = _mm512_inserti64x4(_mm512_castsi256_si512(xw[2]), xw[3], 1);
  _mm512_storeu_si512(ext, _mm512_permutexvar_epi64(qperm, w0));
  _mm512_storeu_si512(ext + 32, _mm512_permutexvar_epi64(qperm, w1));
  const uint64_t m0 = _pdep_u32(nzm[0], 0x0F0F0F0Fu) | _pdep_u32(nzm[1], 0xF0F0F0F0u);
  const uint64_t m1 = _pdep_u32(nzm[2], 0x0F0F0F0Fu) | _pdep_u32(nzm[3], 0xF0F0F0F0u);
  *mask = m0 | (m1 << 32);
  if (special) s.special = true;
  const int lo = _mm512_reduce_min_epi32(vmin), hi = _mm512_reduce_max_epi32(vmax);
  if (lo < s.emin) s.emin = lo;
  if (hi > s.emax) s.emax = hi;
}

#define APPROXSIM_PERMUTE_WIDTH(W)                                                                        \
  template APPROXSIM_AVX512 void table_avx512_permute<W>(int, int, const int32_t*, const float*, const void*, \
                                                         const void*, const void*, const float*, const Table&, \
                                                         float*);
APPROXSIM_PERMUTE_WIDTH(5)
APPROXSIM_PERMUTE_WIDTH(6)
APPROXSIM_PERMUTE_WIDTH(7)
#undef APPROXSIM_PERMUTE_WIDTH

// The expanded-operand kernel of cpu_kernels_avx2.cpp with one 16-lane FMA per panel row: the same
// products and sums, lane for lane, in half the instructions (float32 or bfloat16 panel entries).
APPROXSIM_AVX512 inline __m512 panel16(const float* p) { return _mm512_loadu_ps(p); }
APPROXSIM_AVX512 inline __m512 panel16(const uint16_t* p) {
  return _mm512_castsi512_ps(
      _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}

// compact_row and compact_scale of the kc * kFreeMR A operands of a panel, 16 at a time (rows
// 2^log2_nr entries wide); a is padded: reads past the end stay inside it.
APPROXSIM_AVX512 inline void decode_a_avx512(int kc, const uint16_t* a, int m, int log2_nr, int32_t* arow,
                                             float* asc) {
  const __m512i low = _mm512_set1_epi32(0x7F), high = _mm512_set1_epi32(0xFF80);
  const __m128i rshift = _mm_cvtsi32_si128(7 - m), nshift = _mm_cvtsi32_si128(log2_nr);
  const int n = kc * kFreeMR;
  for (int q = 0; q < n; q += 16) {
    const __m512i e = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + q)));
    const __m512i row = _mm512_sll_epi32(_mm512_srl_epi32(_mm512_and_si512(e, low), rshift), nshift);
    _mm512_store_si512(arow + q, row);
    _mm512_store_ps(asc + q, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_and_si512(e, high), 16)));
  }
}

template <class E>
APPROXSIM_AVX512 void expanded_avx512_t(int kc, const uint16_t* a, int m, const E* bx, float* acc) {
  alignas(64) int32_t arow[kExpandedMaxKc * kFreeMR + 16];
  alignas(64) float asc[kExpandedMaxKc * kFreeMR + 16];
  decode_a_avx512(kc, a, m, 4, arow, asc);
  __m512 c0 = _mm512_loadu_ps(acc), c1 = _mm512_loadu_ps(acc + 16);
  __m512 c2 = _mm512_loadu_ps(acc + 32), c3 = _mm512_loadu_ps(acc + 48);
  const size_t slab = size_t(16) << m;  // entries of one contraction step of the panel
  for (int k = 0; k < kc; ++k) {
    const E* kb = bx + k * slab;
    const int32_t* ar = arow + 4 * k;
    const float* sc = asc + 4 * k;
    c0 = _mm512_fmadd_ps(panel16(kb + ar[0]), _mm512_set1_ps(sc[0]), c0);
    c1 = _mm512_fmadd_ps(panel16(kb + ar[1]), _mm512_set1_ps(sc[1]), c1);
    c2 = _mm512_fmadd_ps(panel16(kb + ar[2]), _mm512_set1_ps(sc[2]), c2);
    c3 = _mm512_fmadd_ps(panel16(kb + ar[3]), _mm512_set1_ps(sc[3]), c3);
  }
  _mm512_storeu_ps(acc, c0);
  _mm512_storeu_ps(acc + 16, c1);
  _mm512_storeu_ps(acc + 32, c2);
  _mm512_storeu_ps(acc + 48, c3);
}

APPROXSIM_AVX512 void expanded_avx512(int kc, const uint16_t* a, int m, const float* bx, float* acc) {
  expanded_avx512_t(kc, a, m, bx, acc);
}
APPROXSIM_AVX512 void expanded_bf16_avx512(int kc, const uint16_t* a, int m, const uint16_t* bx, float* acc) {
  expanded_avx512_t(kc, a, m, bx, acc);
}

// bfloat16 panels of 32 columns (kWideNR): a panel row is one 64-byte line, whose 32-bit words give
// the even columns as floats by a shift (their low bfloat16) and the odd ones by a mask (their high
// one); two 16-lane FMAs per row and step, eight named accumulators (split from acc into even and
// odd columns and merged back once per call).
APPROXSIM_AVX512 void expanded32_bf16_avx512(int kc, const uint16_t* a, int m, const uint16_t* bx, float* acc) {
  alignas(64) int32_t arow[kExpandedMaxKc * kFreeMR + 16];
  alignas(64) float asc[kExpandedMaxKc * kFreeMR + 16];
  decode_a_avx512(kc, a, m, 5, arow, asc);
  __m512i e0i, o0i, e1i, o1i, e2i, o2i, e3i, o3i;
  split_even_odd16(acc, e0i, o0i);
  split_even_odd16(acc + 32, e1i, o1i);
  split_even_odd16(acc + 64, e2i, o2i);
  split_even_odd16(acc + 96, e3i, o3i);
  __m512 e0 = _mm512_castsi512_ps(e0i), o0 = _mm512_castsi512_ps(o0i), e1 = _mm512_castsi512_ps(e1i);
  __m512 o1 = _mm512_castsi512_ps(o1i), e2 = _mm512_castsi512_ps(e2i), o2 = _mm512_castsi512_ps(o2i);
  __m512 e3 = _mm512_castsi512_ps(e3i), o3 = _mm512_castsi512_ps(o3i);
  const __m512i high = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  const size_t slab = size_t(kWideNR) << m;
  for (int k = 0; k < kc; ++k) {
    const uint16_t* kb = bx + k * slab;
    const int32_t* ar = arow + 4 * k;
    const float* sc = asc + 4 * k;
#define APPROXSIM_ROW(r, e, o)                                                              \
  {                                                                                         \
    const __m512i v = _mm512_loadu_si512(kb + ar[r]);                                       \
    const __m512 s = _mm512_set1_ps(sc[r]);                                                 \
    e = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), s, e);               \
    o = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(v, high)), s, o);              \
  }
    APPROXSIM_ROW(0, e0, o0)
    APPROXSIM_ROW(1, e1, o1)
    APPROXSIM_ROW(2, e2, o2)
    APPROXSIM_ROW(3, e3, o3)
#undef APPROXSIM_ROW
  }
  merge_even_odd16(_mm512_castps_si512(e0), _mm512_castps_si512(o0), acc);
  merge_even_odd16(_mm512_castps_si512(e1), _mm512_castps_si512(o1), acc + 32);
  merge_even_odd16(_mm512_castps_si512(e2), _mm512_castps_si512(o2), acc + 64);
  merge_even_odd16(_mm512_castps_si512(e3), _mm512_castps_si512(o3), acc + 96);
}

// The linear-sum kernel of cpu_kernels_avx2.cpp with 16 lanes: the same operations, lane for lane.
template <int P>
APPROXSIM_AVX512 void linear_avx512(int kc, int as, const float* au, const float* asc, const float* bv,
                                    const float* bsc, const LinearSum& lin, float* tile) {
  __m512 al[P], be[P], th[P];
  for (int p = 0; p < P; ++p) {
    al[p] = _mm512_set1_ps(lin.alpha[p]);
    be[p] = _mm512_set1_ps(lin.beta[p]);
    th[p] = _mm512_set1_ps(lin.theta[p]);
  }
  __m512 acc[4];
  for (int r = 0; r < 4; ++r) acc[r] = _mm512_setzero_ps();
  for (int k = 0; k < kc; ++k) {
    const __m512 v = _mm512_loadu_ps(bv + k * 16);
    const __m512 sb = _mm512_loadu_ps(bsc + k * 16);
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      const __m512 sum = _mm512_add_ps(_mm512_set1_ps(au[r * as + k]), v);
      __m512 t = _mm512_fmadd_ps(be[0], sum, al[0]);
#pragma GCC unroll 4
      for (int p = 1; p < P; ++p)
        t = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(sum, th[p], _CMP_GE_OQ), t, _mm512_fmadd_ps(be[p], sum, al[p]));
      acc[r] = _mm512_fmadd_ps(t, _mm512_mul_ps(_mm512_set1_ps(asc[r * as + k]), sb), acc[r]);
    }
  }
  for (int r = 0; r < 4; ++r) _mm512_storeu_ps(tile + r * 16, acc[r]);
}

#define APPROXSIM_LINEAR_PIECES(P)                                                                                 \
  template APPROXSIM_AVX512 void linear_avx512<P>(int, int, const float*, const float*, const float*, const float*, \
                                                  const LinearSum&, float*);
APPROXSIM_LINEAR_PIECES(1)
APPROXSIM_LINEAR_PIECES(2)
APPROXSIM_LINEAR_PIECES(3)
APPROXSIM_LINEAR_PIECES(4)
#undef APPROXSIM_LINEAR_PIECES

}  // namespace approxsim
#endif  // APPROXSIM_X86
