// cpu_transpose.h: the transposes that the expanded-panel builders (float and integer) and the
// strided packers of transposed patches and input gradients (cpu_operands.h) share, and the even/odd
// column order of the kernels that read 16-bit panel entries as 32-bit words.
#ifndef APPROXSIM_CPU_TRANSPOSE_H_
#define APPROXSIM_CPU_TRANSPOSE_H_

#include "cpu_isa.h"

#ifdef APPROXSIM_X86
namespace approxsim {

// Transposes the 8x8 block r[0..7] (r[q] = row q) in place.
APPROXSIM_AVX2 inline void transpose8(__m256 r[8]) {
  __m256 t[8];
  for (int q = 0; q < 4; ++q) {
    t[2 * q] = _mm256_unpacklo_ps(r[2 * q], r[2 * q + 1]);
    t[2 * q + 1] = _mm256_unpackhi_ps(r[2 * q], r[2 * q + 1]);
  }
  __m256 u[8];
  for (int q = 0; q < 2; ++q) {
    u[4 * q] = _mm256_shuffle_ps(t[4 * q], t[4 * q + 2], 0x44);
    u[4 * q + 1] = _mm256_shuffle_ps(t[4 * q], t[4 * q + 2], 0xEE);
    u[4 * q + 2] = _mm256_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0x44);
    u[4 * q + 3] = _mm256_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0xEE);
  }
  for (int q = 0; q < 4; ++q) {
    r[q] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x20);
    r[q + 4] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x31);
  }
}

// 16-bit entries: r[q] = 16 consecutive entries (e0 .. e0 + 15) of column q < 8 -> c[x], whose
// 128-bit lane 0 holds entry e0 + x of the 8 columns and lane 1 entry e0 + 8 + x: unpacks within
// lanes (an 8 x 8 transpose per lane). Panel rows of 16 columns then pair the c of two column halves
// (_mm256_permute2x128_si256 0x20 / 0x31).
// One network for both widths (V the vector type, P the intrinsics' prefix).
#define APPROXSIM_TRANSPOSE16_LANES(ATTR, NAME, V, P)                 \
  ATTR inline void NAME(const V r[8], V c[8]) {                        \
    V a[8], b[8];                                                      \
    for (int q = 0; q < 4; ++q) {                                      \
      a[2 * q] = P##_unpacklo_epi16(r[2 * q], r[2 * q + 1]);           \
      a[2 * q + 1] = P##_unpackhi_epi16(r[2 * q], r[2 * q + 1]);       \
    }                                                                  \
    for (int g = 0; g < 2; ++g) { /* rows 4g .. 4g + 3 */              \
      b[4 * g] = P##_unpacklo_epi32(a[4 * g], a[4 * g + 2]);           \
      b[4 * g + 1] = P##_unpackhi_epi32(a[4 * g], a[4 * g + 2]);       \
      b[4 * g + 2] = P##_unpacklo_epi32(a[4 * g + 1], a[4 * g + 3]);   \
      b[4 * g + 3] = P##_unpackhi_epi32(a[4 * g + 1], a[4 * g + 3]);   \
    }                                                                  \
    for (int q = 0; q < 4; ++q) {                                      \
      c[2 * q] = P##_unpacklo_epi64(b[q], b[q + 4]);                   \
      c[2 * q + 1] = P##_unpackhi_epi64(b[q], b[q + 4]);               \
    }                                                                  \
  }
APPROXSIM_TRANSPOSE16_LANES(APPROXSIM_AVX2, transpose16_lanes, __m256i, _mm256)
// AVX-512: the same on 32 consecutive entries per column, per 128-bit lane (c[x] lane L holds entry
// e0 + 8L + x of the 8 columns).
APPROXSIM_TRANSPOSE16_LANES(APPROXSIM_AVX512, transpose16_lanes512, __m512i, _mm512)
#undef APPROXSIM_TRANSPOSE16_LANES

// dst[j * ld + t] = src[t * step + j] for j < 8, t < n: the same 8 consecutive values of n records
// step floats apart, as 8 rows of n (8 x 8 blocks through registers, the tail element by element).
APPROXSIM_AVX2 inline void transpose_strided8(const float* src, int64_t step, int n, float* dst, int64_t ld) {
  int t = 0;
  for (; t + 8 <= n; t += 8) {
    __m256 r[8];
    for (int q = 0; q < 8; ++q) r[q] = _mm256_loadu_ps(src + (t + q) * step);
    transpose8(r);
    for (int j = 0; j < 8; ++j) _mm256_storeu_ps(dst + j * ld + t, r[j]);
  }
  for (; t < n; ++t)
    for (int j = 0; j < 8; ++j) dst[j * ld + t] = src[t * step + j];
}

// Even/odd column order of the kernels that read a row of 16-bit entries as 32-bit words (the even
// column in the low half of each word, the odd one in the high half): a row of accumulators
// (floats or int32, natural column order) split into its even and its odd columns, and merged back.
// AVX2: 16 floats, as two vectors of 8.
APPROXSIM_AVX2 inline void split_even_odd8(const float* p, __m256& even, __m256& odd) {
  const __m256 x0 = _mm256_loadu_ps(p), x1 = _mm256_loadu_ps(p + 8);
  const __m256 t0 = _mm256_permute2f128_ps(x0, x1, 0x20), t1 = _mm256_permute2f128_ps(x0, x1, 0x31);
  even = _mm256_shuffle_ps(t0, t1, 0x88);
  odd = _mm256_shuffle_ps(t0, t1, 0xDD);
}
APPROXSIM_AVX2 inline void merge_even_odd8(__m256 even, __m256 odd, float* p) {
  const __m256 lo = _mm256_unpacklo_ps(even, odd), hi = _mm256_unpackhi_ps(even, odd);
  _mm256_storeu_ps(p, _mm256_permute2f128_ps(lo, hi, 0x20));
  _mm256_storeu_ps(p + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
}
// AVX-512: 32 words (floats or int32), as two vectors of 16.
APPROXSIM_AVX512 inline void split_even_odd16(const void* p, __m512i& even, __m512i& odd) {
  const __m512i x0 = _mm512_loadu_si512(p), x1 = _mm512_loadu_si512(static_cast<const char*>(p) + 64);
  const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  even = _mm512_permutex2var_epi32(x0, evens, x1);
  odd = _mm512_permutex2var_epi32(x0, _mm512_add_epi32(evens, _mm512_set1_epi32(1)), x1);
}
APPROXSIM_AVX512 inline void merge_even_odd16(__m512i even, __m512i odd, void* p) {
  const __m512i low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  _mm512_storeu_si512(p, _mm512_permutex2var_epi32(even, low, odd));
  _mm512_storeu_si512(static_cast<char*>(p) + 64,
                      _mm512_permutex2var_epi32(even, _mm512_add_epi32(low, _mm512_set1_epi32(8)), odd));
}

}  // namespace approxsim
#endif  // APPROXSIM_X86

#endif  // APPROXSIM_CPU_TRANSPOSE_H_
