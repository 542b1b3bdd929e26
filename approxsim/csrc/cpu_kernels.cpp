// cpu_kernels.cpp: table preparation, SIMD detection and the micro-kernels.
//
// Each SIMD path is compiled for its instruction set with a function-level target
// attribute and chosen at run time (__builtin_cpu_supports), so one build runs on
// every x86-64 CPU; other architectures get the portable path only.
#include "cpu_kernels.h"

#include <cstdlib>
#include <cstring>
#include <new>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define APPROXSIM_X86 1
#define APPROXSIM_AVX2 __attribute__((target("avx2,fma")))
#define APPROXSIM_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#define APPROXSIM_VBMI __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vbmi,avx2,fma")))
#define APPROXSIM_AVX512_BMI2 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi2")))
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
      return static_cast<int>(__builtin_cpu_supports("avx512vbmi") ? kAvx512Vbmi : kAvx512);
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
    case kAvx512Vbmi: return "avx512_vbmi";
    case kAvx512: return "avx512";
    case kAvx2: return "avx2";
    default: return "portable";
  }
}

// ---------------------------------------------------------------------------------
// Tables

void HugeFloats::Free::operator()(float* p) const { std::free(p); }

void HugeFloats::assign(const float* src, size_t n, size_t pad) {
  constexpr size_t kHuge = size_t(2) << 20;
  const size_t bytes = ((n + pad) * sizeof(float) + kHuge - 1) / kHuge * kHuge;
  float* p = static_cast<float*>(std::aligned_alloc(kHuge, bytes));
  if (p == nullptr) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  if (bytes >= kHuge) madvise(p, bytes, MADV_HUGEPAGE);  // a hint: failure is harmless
#endif
  std::memcpy(p, src, n * sizeof(float));
  std::memset(p + n, 0, bytes - n * sizeof(float));
  p_.reset(p);
}

struct Table::Transposed {
  std::once_flag once;
  std::unique_ptr<Table> table;
};

const Table& Table::transposed() const {
  if (m == 0) return *this;
  std::call_once(tr->once, [this] {
    const size_t side = size_t(1) << m;
    std::vector<float> t(side * side);
    const float* src = f32.data();
    for (size_t i = 0; i < side; ++i)
      for (size_t j = 0; j < side; ++j) t[j * side + i] = src[i * side + j];
    tr->table.reset(new Table(make_table(t.data(), m)));
  });
  return *tr->table;
}

Table make_table(const float* t, int m) {
  Table out;
  out.m = m;
  out.tr = std::make_shared<Table::Transposed>();
  if (m == 0) return out;
  const size_t n = size_t(1) << (2 * m);
  out.f32.assign(t, n, 64);  // vector loads of a short row may run past the end
  out.split.resize(n);
  out.bf16.assign(n + 128, 0);
  out.bf16_exact = true;
  out.emin = 1000;
  out.emax = -1000;
  out.all_normal = true;
  for (size_t k = 0; k < n; ++k) {
    const uint32_t e = (approxsim_f2u(t[k]) >> 23) & 0xFFu;
    if (e == 0 || e == 0xFF) out.all_normal = false;
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
  if (m <= 7 && out.bf16_exact) {
    const size_t side = size_t(1) << m;
    out.planes.assign(side * 256 + 256, 0);
    for (size_t i = 0; i < side; ++i)
      for (size_t j = 0; j < side; ++j) {
        const uint16_t v = out.bf16[i * side + j];
        out.planes[i * 256 + j] = static_cast<uint8_t>(v & 0xFF);
        out.planes[i * 256 + 128 + j] = static_cast<uint8_t>(v >> 8);
      }
  }
  return out;
}

// ---------------------------------------------------------------------------------
// Portable kernels (MR = 4, NR = 16)

static void table_portable(int kc, int as, const int32_t* aoff, const float* asc, const void* bidx, const void*,
                           const void*, const float* bsc, const Table& t, float* tile) {
  const int32_t* bj = static_cast<const int32_t*>(bidx);
  const float* T = t.f32.data();
  float acc[4 * 16] = {0};
  for (int k = 0; k < kc; ++k) {
    for (int r = 0; r < 4; ++r) {
      const float* row = T + aoff[r * as + k];
      const float s = asc[r * as + k];
      for (int c = 0; c < 16; ++c) acc[r * 16 + c] += (row[bj[k * 16 + c]] * bsc[k * 16 + c]) * s;
    }
  }
  std::memcpy(tile, acc, sizeof acc);
}

static void exact_portable(int kc, int as, const float* a, const float* b, float* tile) {
  float acc[4 * 16] = {0};
  for (int k = 0; k < kc; ++k)
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 16; ++c) acc[r * 16 + c] += a[r * as + k] * b[k * 16 + c];
  std::memcpy(tile, acc, sizeof acc);
}

#ifdef APPROXSIM_X86
// ---------------------------------------------------------------------------------
// AVX2 kernels (MR = 4, NR = 16): gathers from the float32 table.

APPROXSIM_AVX2 static void table_avx2(int kc, int as, const int32_t* aoff, const float* asc, const void* bidx,
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

APPROXSIM_AVX2 static void exact_avx2(int kc, int as, const float* a, const float* b, float* tile) {
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
// AVX-512 kernels (MR = 8, NR = 32)

APPROXSIM_AVX512 static void table_avx512_gather(int kc, int as, const int32_t* aoff, const float* asc, const void* bidx,
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
APPROXSIM_AVX512 static void table_avx512_permute(int kc, int as, const int32_t* aoff, const float* asc, const void* bidx,
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
APPROXSIM_VBMI static void table_avx512_bytes(int kc, int as, const int32_t* aoff, const float* asc, const void* bidx,
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

APPROXSIM_AVX512 static void exact_avx512(int kc, int as, const float* a, const float* b, float* tile) {
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
#endif  // APPROXSIM_X86

// ---------------------------------------------------------------------------------
// Packed-panel conversion

static void convert_a_scalar(const float* raw, int n, int m, int aoff_shift, int32_t* off, float* sc, Stats& s) {
  const int shift = 23 - m;
  const uint32_t imask = (1u << m) - 1;
  for (int q = 0; q < n; ++q) {
    const uint32_t u = bits(raw[q]);
    account(u, s);
    if (m == 0) {
      sc[q] = raw[q];
    } else {
      off[q] = ((u >> 23) & 0xFFu) == 0 ? 0 : static_cast<int32_t>(((u >> shift) & imask) << aoff_shift);
      sc[q] = scale_of(u);
    }
  }
}

static void convert_b_bytes8_scalar(const float* raw, int m, uint8_t* idx, uint16_t* ext, uint64_t* mask,
                                    Stats& s) {
  const int shift = 23 - m;
  const uint32_t imask = (1u << m) - 1;
  uint64_t mk = 0;
  for (int c = 0; c < 64; ++c) {
    const uint32_t u = bits(raw[c]);
    account(u, s);
    const uint32_t e = (u >> 23) & 0xFFu;
    idx[byte_pos(c)] = static_cast<uint8_t>((u >> shift) & imask);
    const int wp = word_pos(c);
    ext[wp] = static_cast<uint16_t>(((e - 127u) << 7) + ((u >> 31) << 15));  // modulo 2^16
    if (e != 0) mk |= uint64_t(1) << wp;
  }
  *mask = mk;
}

#ifdef APPROXSIM_X86
APPROXSIM_AVX512 static void convert_a_avx512(const float* raw, int n, int m, int aoff_shift, int32_t* off,
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

APPROXSIM_AVX512_BMI2 static void convert_b_bytes8_avx512(const float* raw, int m, uint8_t* idx, uint16_t* ext,
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
#endif

void convert_a(const float* raw, int n, int m, int aoff_shift, int32_t* off, float* sc, Stats& s) {
#ifdef APPROXSIM_X86
  if (simd_level() >= kAvx512) return convert_a_avx512(raw, n, m, aoff_shift, off, sc, s);
#endif
  convert_a_scalar(raw, n, m, aoff_shift, off, sc, s);
}

void convert_b_bytes8(const float* raw, int m, uint8_t* idx, uint16_t* ext, uint64_t* mask, Stats& s) {
#ifdef APPROXSIM_X86
  if (simd_level() >= kAvx512) return convert_b_bytes8_avx512(raw, m, idx, ext, mask, s);
#endif
  convert_b_bytes8_scalar(raw, m, idx, ext, mask, s);
}

KernelSet select_kernels(const Table& t) {
  KernelSet ks{4, 16, kGather32, t.m, table_portable, exact_portable};
#ifdef APPROXSIM_X86
  const int level = simd_level();
  if (level >= kAvx512) {
    ks = KernelSet{8, 32, kGather32, t.m, table_avx512_gather, exact_avx512};
    if (t.m >= 1 && t.m <= 7 && t.bf16_exact && t.all_normal && level >= kAvx512Vbmi) {
      ks = KernelSet{4, 64, kBytes8, 8, table_avx512_bytes, exact_avx512};
    } else if (t.m >= 1 && t.m <= 7 && t.bf16_exact) {
      ks.bformat = kPermute16;
      ks.table = t.m <= 5 ? table_avx512_permute<5> : t.m == 6 ? table_avx512_permute<6> : table_avx512_permute<7>;
    }
  } else if (level >= kAvx2) {
    ks = KernelSet{4, 16, kGather32, t.m, table_avx2, exact_avx2};
  }
#endif
  return ks;
}

}  // namespace approxsim
