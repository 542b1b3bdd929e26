// cpu_kernels.cpp: table preparation, SIMD detection and the micro-kernels.
//
// Each SIMD path is compiled for its instruction set with a function-level target
// attribute and chosen at run time (__builtin_cpu_supports), so one build runs on
// every x86-64 CPU; other architectures get the portable path only.
#include "cpu_kernels.h"

#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define APPROXSIM_X86 1
#define APPROXSIM_AVX2 __attribute__((target("avx2,fma")))
#define APPROXSIM_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#endif

namespace approxsim {

// ---------------------------------------------------------------------------------
// SIMD level

int detected_simd_level() {
#ifdef APPROXSIM_X86
  static const int level = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
      return static_cast<int>(kAvx512);
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return static_cast<int>(kAvx2);
    return static_cast<int>(kPortable);
  }();
  return level;
#else
  return kPortable;
#endif
}

static int forced_level = -1;

int simd_level() {
  int d = detected_simd_level();
  return (forced_level >= 0 && forced_level < d) ? forced_level : d;
}

void set_simd_level(int level) { forced_level = level; }

const char* simd_name(int level) {
  switch (level) {
    case kAvx512: return "avx512";
    case kAvx2: return "avx2";
    default: return "portable";
  }
}

// ---------------------------------------------------------------------------------
// Tables

Table make_table(const float* t, int m) {
  Table out;
  out.m = m;
  if (m == 0) return out;
  const size_t n = size_t(1) << (2 * m);
  out.f32.assign(t, t + n);
  out.f32.resize(n + 64, 0.0f);  // vector loads of a short row may run past the end
  out.split.resize(n);
  out.bf16.assign(n + 128, 0);
  out.bf16_exact = true;
  out.emin = 1000;
  out.emax = -1000;
  for (size_t k = 0; k < n; ++k) {
    out.split[k] = approxsim_split_entry(t[k]);
    uint32_t u = approxsim_f2u(t[k]);
    if ((u & 0xFFFFu) != 0) out.bf16_exact = false;
    out.bf16[k] = static_cast<uint16_t>(u >> 16);
    if ((u & 0x7FFFFFFFu) != 0) {
      out.any_nonzero = true;
      int e = out.split[k].exp;
      if (e < out.emin) out.emin = e;
      if (e > out.emax) out.emax = e;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------
// Portable kernels (MR = 4, NR = 16)

static void table_portable(int kc, const int32_t* aoff, const float* asc, const void* bidx, const uint32_t*,
                           const float* bsc, const Table& t, float* tile) {
  const int32_t* bj = static_cast<const int32_t*>(bidx);
  const float* T = t.f32.data();
  float acc[4 * 16] = {0};
  for (int k = 0; k < kc; ++k) {
    for (int r = 0; r < 4; ++r) {
      const float* row = T + aoff[k * 4 + r];
      const float s = asc[k * 4 + r];
      for (int c = 0; c < 16; ++c) acc[r * 16 + c] += (row[bj[k * 16 + c]] * bsc[k * 16 + c]) * s;
    }
  }
  std::memcpy(tile, acc, sizeof acc);
}

static void exact_portable(int kc, const float* a, const float* b, float* tile) {
  float acc[4 * 16] = {0};
  for (int k = 0; k < kc; ++k)
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 16; ++c) acc[r * 16 + c] += a[k * 4 + r] * b[k * 16 + c];
  std::memcpy(tile, acc, sizeof acc);
}

#ifdef APPROXSIM_X86
// ---------------------------------------------------------------------------------
// AVX2 kernels (MR = 4, NR = 16): gathers from the float32 table.

APPROXSIM_AVX2 static void table_avx2(int kc, const int32_t* aoff, const float* asc, const void* bidx,
                                      const uint32_t*, const float* bsc, const Table& t, float* tile) {
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
      const float* row = T + aoff[k * 4 + r];
      const __m256 a = _mm256_broadcast_ss(asc + k * 4 + r);
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

APPROXSIM_AVX2 static void exact_avx2(int kc, const float* a, const float* b, float* tile) {
  __m256 acc[4][2];
  for (int r = 0; r < 4; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(b + k * 16), b1 = _mm256_loadu_ps(b + k * 16 + 8);
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      const __m256 x = _mm256_broadcast_ss(a + k * 4 + r);
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
// AVX-512 kernels (MR = 8, NR = 32)

APPROXSIM_AVX512 static void table_avx512_gather(int kc, const int32_t* aoff, const float* asc, const void* bidx,
                                                 const uint32_t*, const float* bsc, const Table& t, float* tile) {
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
      const float* row = T + aoff[k * 8 + r];
      const __m512 a = _mm512_set1_ps(asc[k * 8 + r]);
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
APPROXSIM_AVX512 static void table_avx512_permute(int kc, const int32_t* aoff, const float* asc, const void* bidx,
                                                  const uint32_t* bmask, const float* bsc, const Table& t,
                                                  float* tile) {
  const uint16_t* bj = static_cast<const uint16_t*>(bidx);
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
      const uint16_t* row = T + aoff[k * 8 + r];
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
      const __m512 a = _mm512_set1_ps(asc[k * 8 + r]);
      acc[r][0] = _mm512_fmadd_ps(_mm512_mul_ps(g0, s0), a, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(_mm512_mul_ps(g1, s1), a, acc[r][1]);
    }
  }
  for (int r = 0; r < 8; ++r) {
    _mm512_storeu_ps(tile + r * 32, acc[r][0]);
    _mm512_storeu_ps(tile + r * 32 + 16, acc[r][1]);
  }
}

APPROXSIM_AVX512 static void exact_avx512(int kc, const float* a, const float* b, float* tile) {
  __m512 acc[8][2];
  for (int r = 0; r < 8; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(b + k * 32), b1 = _mm512_loadu_ps(b + k * 32 + 16);
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r) {
      const __m512 x = _mm512_set1_ps(a[k * 8 + r]);
      acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
    }
  }
  for (int r = 0; r < 8; ++r) {
    _mm512_storeu_ps(tile + r * 32, acc[r][0]);
    _mm512_storeu_ps(tile + r * 32 + 16, acc[r][1]);
  }
}
#endif  // APPROXSIM_X86

KernelSet select_kernels(const Table& t) {
  KernelSet ks{4, 16, false, table_portable, exact_portable};
#ifdef APPROXSIM_X86
  const int level = simd_level();
  if (level >= kAvx512) {
    ks = KernelSet{8, 32, false, table_avx512_gather, exact_avx512};
    if (t.m >= 1 && t.m <= 7 && t.bf16_exact) {
      ks.permute = true;
      ks.table = t.m <= 5 ? table_avx512_permute<5> : t.m == 6 ? table_avx512_permute<6> : table_avx512_permute<7>;
    }
  } else if (level >= kAvx2) {
    ks = KernelSet{4, 16, false, table_avx2, exact_avx2};
  }
#endif
  return ks;
}

}  // namespace approxsim
