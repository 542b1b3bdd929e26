// cpu_int.cpp: integer GEMM and convolutions (see cpu_int.h).
#include "cpu_int.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <limits>
#include <cstring>
#include <string>
#include <type_traits>

#include "cpu_driver.h"
#include "cpu_int_exact.h"
#include "cpu_isa.h"
#include "cpu_pool.h"
#include "cpu_transpose.h"

namespace approxsim {

using detail::GatherDyA;
using detail::GeneralB;
using detail::PatchA;
using detail::PatchA16;
using detail::PatchTA;
using detail::StridedA;

IntTable make_int_table(const int32_t* table, int bits) {
  IntTable t;
  t.bits = bits;
  const int64_t side = int64_t(1) << bits;
  t.s1 = side + 1;
  t.t.assign(size_t(t.s1) * t.s1 + 8, 0);
  t.tt.assign(size_t(t.s1) * t.s1 + 8, 0);
  for (int64_t i = 0; i < side; ++i)
    for (int64_t j = 0; j < side; ++j) {
      const int32_t v = table[i * side + j];
      t.t[(i + 1) * t.s1 + j + 1] = v;
      t.tt[(j + 1) * t.s1 + i + 1] = v;
      t.min_entry = std::min<int64_t>(t.min_entry, v);
      t.max_entry = std::max<int64_t>(t.max_entry, v);
    }
  // Exact products of the codes' values, unsigned (p * q) or of the patterns as two's complement.
  const int64_t half = side / 2;
  bool unsigned_exact = true, signed_exact = true;
  for (int64_t i = 0; i < side && (unsigned_exact || signed_exact); ++i)
    for (int64_t j = 0; j < side; ++j) {
      const int64_t v = table[i * side + j], si = i >= half ? i - side : i, sj = j >= half ? j - side : j;
      unsigned_exact = unsigned_exact && v == i * j;
      signed_exact = signed_exact && v == si * sj;
    }
  t.exact = unsigned_exact ? 1 : signed_exact ? 2 : 0;
  if (t.fits_uint16() || t.fits_int16()) {
    t.tt16.assign(t.tt.size() + 16, 0);  // padded: the panel build reads 16 rows at a time
    for (size_t q = 0; q < t.tt.size(); ++q) t.tt16[q] = static_cast<uint16_t>(t.tt[q]);
  }
  return t;
}

// fn(q0, q1) over [0, count) by chunks of 2^16 elements, in parallel where there are 4 chunks or more.
template <class Fn>
void for_chunks(int64_t count, int threads, const Fn& fn) {
  constexpr int64_t kChunk = int64_t(1) << 16;
  const int64_t chunks = (count + kChunk - 1) / kChunk;
  ThreadPool::instance().parallel_for(static_cast<int>(chunks), chunks >= 4 ? threads : 1, [&](int c) {
    fn(c * kChunk, std::min(count, (c + 1) * kChunk));
  });
}

template <class T>
bool encode_codes(const T* codes, int64_t count, int bits, bool is_signed, float* dst, int threads) {
  // Compared in the codes' own type where the range fits it (so that narrow codes stay narrow in
  // the vectorized loop), else in int64: lo and hi clamped to T's range.
  using C = typename std::conditional<(sizeof(T) < 8), int32_t, int64_t>::type;
  const int64_t lo64 = is_signed ? -(int64_t(1) << (bits - 1)) : 0;
  const int64_t hi64 = is_signed ? (int64_t(1) << (bits - 1)) - 1 : (int64_t(1) << bits) - 1;
  const int64_t tmin = static_cast<int64_t>(std::numeric_limits<T>::min());
  const uint64_t tmax = static_cast<uint64_t>(std::numeric_limits<T>::max());
  const C lo = static_cast<C>(std::max(lo64, tmin));
  const C hi = static_cast<C>(static_cast<uint64_t>(hi64) < tmax ? hi64 : static_cast<int64_t>(tmax));
  const C mask = static_cast<C>((int64_t(1) << bits) - 1);
  std::atomic<bool> ok{true};
  for_chunks(count, threads, [&](int64_t q0, int64_t q1) {
    int32_t bad = 0;  // no early exit, so that the loop vectorizes
    for (int64_t q = q0; q < q1; ++q) {
      const C v = static_cast<C>(codes[q]);
      bad |= static_cast<int32_t>(v < lo) | static_cast<int32_t>(v > hi);
      dst[q] = static_cast<float>((v & mask) + 1);
    }
    if (bad) ok = false;
  });
  return ok;
}
bool encoded_in_table(const float* codes, int64_t count, const IntTable& t, int threads) {
  const float hi = static_cast<float>(t.s1 - 1);
  std::atomic<bool> ok{true};
  for_chunks(count, threads, [&](int64_t q0, int64_t q1) {
    // No early exit and no conversion, so that the loop vectorizes: v is clamped to [0, hi] (NaN to
    // 0), and c < 2^23 is an integer exactly when (c + 2^23) - 2^23 == c (round to nearest).
    int32_t bad = 0;
    for (int64_t q = q0; q < q1; ++q) {
      const float v = codes[q], lo_clamped = v > 0.0f ? v : 0.0f, x = lo_clamped < hi ? lo_clamped : hi;
      bad |= static_cast<int32_t>(x != v) | static_cast<int32_t>((x + 8388608.0f) - 8388608.0f != x);
    }
    if (bad) ok = false;
  });
  return ok;
}

#define APPROXSIM_ENCODE(T) template bool encode_codes<T>(const T*, int64_t, int, bool, float*, int);
APPROXSIM_ENCODE(int8_t)
APPROXSIM_ENCODE(uint8_t)
APPROXSIM_ENCODE(int16_t)
APPROXSIM_ENCODE(uint16_t)
APPROXSIM_ENCODE(int32_t)
APPROXSIM_ENCODE(uint32_t)
APPROXSIM_ENCODE(int64_t)
APPROXSIM_ENCODE(uint64_t)
#undef APPROXSIM_ENCODE

namespace {

constexpr int kMR = 4;  // rows per micro-kernel
constexpr int kMaxExpandedIntBits = 8;
constexpr int kMaxIntKc = 128;  // contraction steps of one expanded panel, at most
constexpr int kPackRows = 32;  // rows of A packed as floats at a time (expanded)

enum class IntMethod { kExact, kExpanded, kLookup };

// Whether the expanded kernels can take the table: at most 8 bits, and entries small enough that a
// kernel call's int32 partial sums (up to kMaxIntKc steps before they are carried) cannot overflow.
bool expandable(const IntTable& t) { return t.bits <= kMaxExpandedIntBits && t.max_abs() <= INT32_MAX / kMaxIntKc; }

// Whether the exact-product GEMM takes the table: exact products of codes of at most 8 bits.
bool computable(const IntTable& t) { return t.exact != 0 && t.bits <= int_exact::kMaxExactBits; }

IntMethod choose(const IntTable& t, int64_t rows) {
  const int forced = forced_method();  // the float driver's hook: "exact", "expanded" or any other
  if (forced >= 0) {
    if (forced == int(Method::kExact) && computable(t)) return IntMethod::kExact;
    return forced == int(Method::kExpanded) && expandable(t) ? IntMethod::kExpanded : IntMethod::kLookup;
  }
  if (computable(t)) return IntMethod::kExact;
  // The panel costs s1 rows per contraction step whatever the rows of A; measured (AMD Zen 5, 8 bits,
  // K = 400, N = 120): it beats one lookup per product from about 24 rows (32: 0.93 ms against 1.25).
  return expandable(t) && rows * 8 >= t.s1 ? IntMethod::kExpanded : IntMethod::kLookup;
}

// Contraction steps of one expanded panel of NR-wide rows of E: 3/8 of the L2 (the rest for the A
// stream and the accumulators, which pass through it every step of the panel), at least 8, at most
// kMaxIntKc. Fewer steps cost more accumulator traffic per step. Measured at 8 bits, 16-bit entries,
// one thread: GEMM 1024^3, AMD Zen 4, 16 columns: 62 ms at 31 steps (256 KiB), 65 ms at 15, 74 ms at
// 7; AMD Zen 5 (1 MiB L2), 32 columns, in alternating runs: the conv layer of bench_int.py 45.1 ms at
// 15 steps (256 KiB), 41.1 at 30, 41.9 at 45, 39.2 at 60 (medians); GEMM 1024^3 37.5, 36.0, 36.7,
// 39.6. AMD Zen 4 (1 MiB L2), 2 threads, mul8u_2AC, 32 columns, medians of 40 in alternating runs:
// the conv layer at 31 steps (1/2 of the L2) 24.0-24.9 ms, at 23 steps (3/8) 23.7-24.0, at 15 (1/4)
// 25.0-25.8 (AVX2 level); 19.2-21.6 and 19.0-20.2 (31 and 23 steps, VBMI); GEMM 1024^3 22.7-22.9 and
// 22.5-23.6 (AVX2), 22.7 and 22.0 (VBMI). The Zen 5 figures above (one thread, blocks of 2^21 codes,
// at 1/2 of the L2) favoured more steps, not fewer: not measured there at 3/8.
// The K steps of the contraction are then shared out evenly among the panels that many steps need,
// rounded up to a multiple of 8, so that the code packing (pack_codes) copies whole vectors and no
// panel is a sliver: the ResNet layer's K = 576 took 25 panels of 23 steps and one of 1 on a 1 MiB
// L2, and takes 24 of 24 (its packing 10.5% -> 7.6% of the layer's samples, AMD Zen 5, VBMI).
static_assert(kMaxIntKc % 8 == 0, "expanded_kc rounds up to multiples of 8 within kMaxIntKc");
template <int NR, class E>
int expanded_kc(int64_t s1, int64_t K) {
  const int64_t fit = (l2_cache_bytes() * 3 / 8) / (s1 * NR * int64_t(sizeof(E)));
  const int64_t steps = std::max<int64_t>(8, std::min<int64_t>(kMaxIntKc, fit));
  const int64_t panels = std::max<int64_t>(1, (K + steps - 1) / steps), even = (K + panels - 1) / panels;
  return static_cast<int>((even + 7) / 8 * 8);  // even <= steps <= kMaxIntKc, a multiple of 8
}

struct IntWork {  // every buffer on a cache line (the kernels read them with full-width loads)
  LineVector<float> araw, braw;
  LineVector<uint16_t> araw16, a16;
  LineVector<int32_t> wx, acc32, aoff, bidx;
  LineVector<int64_t> acc64;
  std::vector<uint64_t> used;  // the panel rows a block reads, per contraction step (RowMask)
  int_exact::Work exact;  // the exact-product GEMM's
};
IntWork& int_scratch() {
  thread_local IntWork w;
  return w;
}

// Expanded panels are NR = 16 columns wide, or 8 where the output has at most 8 columns (a first
// convolution's few filters): the panel rows and the micro-kernel's loads are then half as wide; or,
// with 16-bit entries, 32 (kernel_avx512_32, kernel_avx2_32w: a panel row is one cache line).
// Their entries are 16-bit where every table entry fits (E = uint16_t: unsigned 8-bit circuits;
// int16_t: signed ones), int32 otherwise: half the panel, so half the traffic from L2 per product.

// The A operand of the expanded kernels holds each encoded code e as its panel row's offset in
// 8-byte units, e * NR * sizeof(E) / 8 (rows are 16 to 64 bytes), so that the kernels address the
// row with one scaled load: no shift per product.
template <int NR, class E>
constexpr int kRowUnits = NR * int(sizeof(E)) / 8;
template <class E>
inline const E* panel_row(const E* kb, uint16_t offset) {
  return reinterpret_cast<const E*>(reinterpret_cast<const int64_t*>(kb) + offset);
}

// The panel rows a block of A reads: bit g of used[k] is set where one of the block's rows has an
// encoded code in [8g, 8g + 8) at contraction step k (at most 8 bits: e in 0 .. 256, 33 groups).
// The builds make only those groups' rows: quantized data leaves many codes unused (bench_int.py's
// Gaussian codes, sigma = range / 8: the 1024 rows of a GEMM use 25-26 of the 33 groups per step; a
// ReLU's codes far fewer). The other rows keep whatever the buffer held; only the rows that pad a
// block's last 4-row panel (e = 0) read them, into sums that are never stored.
using RowMask = uint64_t;
constexpr int kCodeGroupBits = 3;
static_assert(((int64_t(1) << kMaxExpandedIntBits) >> kCodeGroupBits) < 64, "one mask word per step");
inline RowMask code_group_bit(uint32_t e) { return RowMask(1) << (e >> kCodeGroupBits); }
// Whether any of the n groups of 8 panel rows from row e0 (a multiple of 8) is used.
inline bool rows_used(RowMask used, int64_t e0, int n = 1) {
  return (used >> (e0 >> kCodeGroupBits)) & ((RowMask(1) << n) - 1);
}

// Expanded panel: wx[(k * s1 + e) * NR + c] = t[e][eb[k][c]] for e in [0, s1) (the used ones).
template <int NR, class E>
void build_portable(const float* braw, int kc, const IntTable& t, const RowMask* used, void* out) {
  E* wx = static_cast<E*>(out);
  const int64_t s1 = t.s1;
  for (int k = 0; k < kc; ++k)
    for (int c = 0; c < NR; ++c) {
      const int32_t* col = t.tt.data() + int64_t(braw[k * NR + c]) * s1;
      E* dst = wx + (int64_t(k) * s1) * NR + c;
      for (int64_t e = 0; e < s1; ++e)
        if (used[k] & code_group_bit(uint32_t(e))) dst[e * NR] = static_cast<E>(col[e]);
    }
}

// acc[r * NR + c] += sum_k wx[(k * s1 + e[r][k]) * NR + c], a[r * lda + k] the row offset of e[r][k].
template <int NR, class E>
void kernel_portable(int kc, const uint16_t* a, int64_t lda, int64_t s1, const void* panel, int32_t* acc) {
  const E* wx = static_cast<const E*>(panel);
  for (int k = 0; k < kc; ++k) {
    const E* kb = wx + int64_t(k) * s1 * NR;
    for (int r = 0; r < kMR; ++r) {
      const E* row = panel_row(kb, a[r * lda + k]);
      for (int c = 0; c < NR; ++c) acc[r * NR + c] += row[c];
    }
  }
}

// The 16-bit transposed table's columns (contiguous over e) of n packed B operands (encoded codes).
inline void columns16(const float* operands, int n, const IntTable& t, const uint16_t** col) {
  for (int c = 0; c < n; ++c) col[c] = t.tt16.data() + int64_t(operands[c]) * t.s1;
}
// Panel rows [e0, s1) of a contraction step's slab of NR-wide rows, entry by entry (what the vector
// blocks of a build leave).
template <int NR>
inline void rows16_from(const uint16_t* const* col, int64_t e0, int64_t s1, uint16_t* slab) {
  for (int64_t e = e0; e < s1; ++e)
    for (int c = 0; c < NR; ++c) slab[e * NR + c] = col[c][e];
}

#ifdef APPROXSIM_X86
// Eight panel entries as eight int32 lanes, and back.
template <class E>
APPROXSIM_AVX2 inline __m256i load8(const E* p);
template <>
APPROXSIM_AVX2 inline __m256i load8<int32_t>(const int32_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
template <>
APPROXSIM_AVX2 inline __m256i load8<uint16_t>(const uint16_t* p) {
  return _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
template <>
APPROXSIM_AVX2 inline __m256i load8<int16_t>(const int16_t* p) {
  return _mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
// 16-bit entries, 8 columns (AVX2): the table columns (contiguous over e) transposed in blocks of 16
// entries (transpose16_lanes) into panel rows (the 16- and 32-column builds are below).
template <int NR, class E>
APPROXSIM_AVX2 void build16_avx2(const float* braw, int kc, const IntTable& t, const RowMask* used, void* out) {
  static_assert(sizeof(E) == 2, "16-bit entries");
  uint16_t* wx = static_cast<uint16_t*>(out);
  const int64_t s1 = t.s1;
  for (int k = 0; k < kc; ++k) {
    uint16_t* slab = wx + int64_t(k) * s1 * NR;
    for (int h = 0; h < NR / 8; ++h) {  // 8 columns at a time: half rows of 16 bytes
      const uint16_t* col[8];
      columns16(braw + k * NR + h * 8, 8, t, col);
      for (int64_t e0 = 0; e0 < s1; e0 += 16) {  // tt16 is padded: loads past s1 stay inside it
        if (!rows_used(used[k], e0, 2)) continue;
        __m256i r[8], c[8];  // c[x]: lane 0 = panel row e0 + x, lane 1 = row e0 + 8 + x
        for (int q = 0; q < 8; ++q) r[q] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(col[q] + e0));
        transpose16_lanes(r, c);
        const int rows = static_cast<int>(std::min<int64_t>(16, s1 - e0));
        uint16_t* dst = slab + e0 * NR + h * 8;
        for (int x = 0; x < 8; ++x) {
          if (x < rows) _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + x * NR), _mm256_castsi256_si128(c[x]));
          if (x + 8 < rows)
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (x + 8) * NR), _mm256_extracti128_si256(c[x], 1));
        }
      }
    }
  }
}

// Four runs of 8 entries as the four 128-bit lanes of a vector (broadcast loads: no shuffle).
APPROXSIM_AVX512 inline __m512i lanes4(const uint16_t* p0, const uint16_t* p1, const uint16_t* p2, const uint16_t* p3) {
  __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p0)));
  v = _mm512_mask_broadcast_i32x4(v, 0x00F0, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p1)));
  v = _mm512_mask_broadcast_i32x4(v, 0x0F00, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p2)));
  return _mm512_mask_broadcast_i32x4(v, 0xF000, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p3)));
}
// 16-bit entries, 32 columns (AVX-512): blocks of 8 panel rows from 8 entries of each of the 32
// columns, lane h of vector q holding column 8h + q (lanes4), transposed within the lanes
// (transpose16_lanes512): each panel row is one 64-byte store. Measured (AMD Zen 5, one thread, int8
// GEMM 1024^3, median of 10): 37.6-39.3 -> 34.5-34.8 ms against build16_avx2's half-row stores; 64-byte
// loads with a 4 x 4 transpose of the lanes after the one within them were no faster.
APPROXSIM_AVX512 void build16_avx512_32(const float* braw, int kc, const IntTable& t, const RowMask* used,
                                        void* out) {
  uint16_t* wx = static_cast<uint16_t*>(out);
  const int64_t s1 = t.s1, full = s1 / 8 * 8;
  for (int k = 0; k < kc; ++k) {
    uint16_t* slab = wx + int64_t(k) * s1 * 32;
    const uint16_t* col[32];
    columns16(braw + k * 32, 32, t, col);
    for (int64_t e0 = 0; e0 < full; e0 += 8) {
      if (!rows_used(used[k], e0)) continue;
      __m512i r[8], c[8];
      for (int q = 0; q < 8; ++q) r[q] = lanes4(col[q] + e0, col[8 + q] + e0, col[16 + q] + e0, col[24 + q] + e0);
      transpose16_lanes512(r, c);
      uint16_t* dst = slab + e0 * 32;
      for (int x = 0; x < 8; ++x) _mm512_storeu_si512(dst + x * 32, c[x]);
    }
    rows16_from<32>(col, full, s1, slab);
  }
}

// 16-bit entries, 16 or 32 columns (AVX2): for each 16 columns, blocks of 8 panel rows from 8 entries
// of each column, lane h of vector q holding column 8h + q, transposed within the lanes: each 16
// columns of a panel row are one 32-byte store. Measured (AMD Zen 5, AVX2, one thread, GEMM 1024^3,
// 16 columns, medians of 8 in alternating runs): 36.8 and 38.9 ms -> 35.8 and 37.5 against
// build16_avx2's half rows.
template <int NR>
APPROXSIM_AVX2 void build16_avx2_wide(const float* braw, int kc, const IntTable& t, const RowMask* used, void* out) {
  static_assert(NR % 16 == 0, "whole 16-column halves");
  uint16_t* wx = static_cast<uint16_t*>(out);
  const int64_t s1 = t.s1, full = s1 / 8 * 8;
  for (int k = 0; k < kc; ++k) {
    uint16_t* slab = wx + int64_t(k) * s1 * NR;
    const uint16_t* col[NR];
    columns16(braw + k * NR, NR, t, col);
    for (int64_t e0 = 0; e0 < full; e0 += 8) {
      if (!rows_used(used[k], e0)) continue;
      for (int h = 0; h < NR; h += 16) {
        __m256i r[8], c[8];
        for (int q = 0; q < 8; ++q)
          r[q] = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(col[h + 8 + q] + e0),
                                     reinterpret_cast<const __m128i*>(col[h + q] + e0));
        transpose16_lanes(r, c);
        uint16_t* dst = slab + e0 * NR + h;
        for (int x = 0; x < 8; ++x) _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + x * NR), c[x]);
      }
    }
    rows16_from<NR>(col, full, s1, slab);
  }
}

// int32 entries: 8 table columns transposed 8 x 8 into panel rows.
template <int NR>
APPROXSIM_AVX2 void build32_avx2(const float* braw, int kc, const IntTable& t, const RowMask* used, void* out) {
  int32_t* wx = static_cast<int32_t*>(out);
  const int64_t s1 = t.s1;
  for (int k = 0; k < kc; ++k)
    for (int c0 = 0; c0 < NR; c0 += 8) {
      const int32_t* col[8];
      for (int q = 0; q < 8; ++q) col[q] = t.tt.data() + int64_t(braw[k * NR + c0 + q]) * s1;
      for (int64_t e0 = 0; e0 < s1; e0 += 8) {  // tt is padded: the loads past s1 stay inside it
        if (!rows_used(used[k], e0)) continue;
        __m256 r[8];
        for (int q = 0; q < 8; ++q) r[q] = _mm256_castsi256_ps(_mm256_loadu_si256(
                                               reinterpret_cast<const __m256i*>(col[q] + e0)));
        transpose8(r);
        const int rows = static_cast<int>(std::min<int64_t>(8, s1 - e0));
        for (int q = 0; q < rows; ++q)
          _mm256_storeu_ps(reinterpret_cast<float*>(wx + ((int64_t(k) * s1) + e0 + q) * NR + c0), r[q]);
      }
    }
}

template <int NR, class E>
APPROXSIM_AVX2 void kernel_avx2(int kc, const uint16_t* a, int64_t lda, int64_t s1, const void* panel,
                                int32_t* acc);

template <class E>
APPROXSIM_AVX2 void kernel_avx2_16(int kc, const uint16_t* a, int64_t lda, int64_t s1, const void* panel,
                                   int32_t* acc) {
  const E* wx = static_cast<const E*>(panel);
  __m256i c00 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc));
  __m256i c01 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + 8));
  __m256i c10 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + 16));
  __m256i c11 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + 24));
  __m256i c20 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + 32));
  __m256i c21 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + 40));
  __m256i c30 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + 48));
  __m256i c31 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + 56));
  const int64_t slab = s1 * 16;
  for (int k = 0; k < kc; ++k) {
    const E* kb = wx + k * slab;
    const E* p0 = panel_row(kb, a[k]);
    const E* p1 = panel_row(kb, a[lda + k]);
    const E* p2 = panel_row(kb, a[2 * lda + k]);
    const E* p3 = panel_row(kb, a[3 * lda + k]);
    c00 = _mm256_add_epi32(c00, load8<E>(p0));
    c01 = _mm256_add_epi32(c01, load8<E>(p0 + 8));
    c10 = _mm256_add_epi32(c10, load8<E>(p1));
    c11 = _mm256_add_epi32(c11, load8<E>(p1 + 8));
    c20 = _mm256_add_epi32(c20, load8<E>(p2));
    c21 = _mm256_add_epi32(c21, load8<E>(p2 + 8));
    c30 = _mm256_add_epi32(c30, load8<E>(p3));
    c31 = _mm256_add_epi32(c31, load8<E>(p3 + 8));
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc), c00);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + 8), c01);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + 16), c10);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + 24), c11);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + 32), c20);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + 40), c21);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + 48), c30);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + 56), c31);
}

// AVX2, 16-bit entries, 16 columns: a panel row is one 32-byte load whose 32-bit words hold two
// columns each, the even one in the low half: the halves into an even and an odd accumulator (split
// from acc and merged back once per call), by a mask or shifts: no widening shuffle. Measured (AMD
// Zen 5, AVX2, one thread, mitchell8u, medians of 8 in alternating runs): GEMM 1024^3 41.2 -> 36.7 ms,
// the conv layer of bench_int.py 44.9 -> 42.6 ms, against two widening 16-byte loads per row
// (kernel_avx2_16, kept for int32 entries); int8 (signed entries) on par.
template <class E>
APPROXSIM_AVX2 inline __m256i low_halves8(__m256i v) {
  if constexpr (std::is_signed<E>::value) return _mm256_srai_epi32(_mm256_slli_epi32(v, 16), 16);
  return _mm256_and_si256(v, _mm256_set1_epi32(0xFFFF));
}
template <class E>
APPROXSIM_AVX2 inline __m256i high_halves8(__m256i v) {
  return std::is_signed<E>::value ? _mm256_srai_epi32(v, 16) : _mm256_srli_epi32(v, 16);
}
// Unsigned 16-bit entries in pairs: the even accumulator sums the whole 32-bit words instead of their
// low halves, which adds 2^16 times the odd columns' sum to it (mod 2^32); that is taken off once per
// call, so the even sums are exact wherever they fit an int32 (as every partial sum does). One mask
// per row and step less: 3 vector operations for a row's pair of columns instead of 4. Measured (AMD
// Zen 5, one thread, mul8u_2AC GEMM 1024^3, medians in alternating runs, AVX2 level): 37.7-40.5 ->
// 35.3-36.6 ms; AVX-512 level, 32 columns: 28.3-29.5 -> 28.7-29.5, no change. Signed entries keep the shifts (a negative low half borrows from the high one).
template <class E>
constexpr bool kWholeWords = !std::is_signed<E>::value;

// 16 int32 sums at p (a row's 16 columns, or half of 32) as the even and odd accumulators of the
// 16-bit kernels below, the even one folded for whole-word sums; and back.
template <class E>
APPROXSIM_AVX2 inline void open_pair8(const int32_t* p, __m256i& even, __m256i& odd) {
  __m256 fe, fo;
  split_even_odd8(reinterpret_cast<const float*>(p), fe, fo);
  even = _mm256_castps_si256(fe);
  odd = _mm256_castps_si256(fo);
  if constexpr (kWholeWords<E>) even = _mm256_add_epi32(even, _mm256_slli_epi32(odd, 16));
}
template <class E>
APPROXSIM_AVX2 inline void close_pair8(__m256i even, __m256i odd, int32_t* p) {
  if constexpr (kWholeWords<E>) even = _mm256_sub_epi32(even, _mm256_slli_epi32(odd, 16));
  merge_even_odd8(_mm256_castsi256_ps(even), _mm256_castsi256_ps(odd), reinterpret_cast<float*>(p));
}

template <class E>
APPROXSIM_AVX2 void kernel_avx2_16w(int kc, const uint16_t* a, int64_t lda, int64_t s1, const void* panel,
                                    int32_t* acc) {
  static_assert(sizeof(E) == 2, "16-bit entries");
  const E* wx = static_cast<const E*>(panel);
  __m256i e0, o0, e1, o1, e2, o2, e3, o3;
  open_pair8<E>(acc, e0, o0);
  open_pair8<E>(acc + 16, e1, o1);
  open_pair8<E>(acc + 32, e2, o2);
  open_pair8<E>(acc + 48, e3, o3);
  const int64_t slab = s1 * 16;
  for (int k = 0; k < kc; ++k) {
    const E* kb = wx + k * slab;
#define APPROXSIM_ROW(r)                                                                                      \
  {                                                                                                           \
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel_row(kb, a[r * lda + k])));  \
    e##r = _mm256_add_epi32(e##r, kWholeWords<E> ? v : low_halves8<E>(v));                                             \
    o##r = _mm256_add_epi32(o##r, high_halves8<E>(v));                                                        \
  }
    APPROXSIM_ROW(0)
    APPROXSIM_ROW(1)
    APPROXSIM_ROW(2)
    APPROXSIM_ROW(3)
#undef APPROXSIM_ROW
  }
  close_pair8<E>(e0, o0, acc);
  close_pair8<E>(e1, o1, acc + 16);
  close_pair8<E>(e2, o2, acc + 32);
  close_pair8<E>(e3, o3, acc + 48);
}

// AVX2, 16-bit entries, 32 columns: a panel row is one 64-byte line (two 32-byte loads), so that
// every line fetched from L2 is read whole; two rows per sweep over the contraction steps (four rows'
// 16 accumulators would leave no register for the loads), each half row as in kernel_avx2_16w.
template <class E>
APPROXSIM_AVX2 void kernel_avx2_32w(int kc, const uint16_t* a, int64_t lda, int64_t s1, const void* panel,
                                    int32_t* acc) {
  static_assert(sizeof(E) == 2, "16-bit entries");
  const E* wx = static_cast<const E*>(panel);
  const int64_t slab = s1 * 32;
  for (int pair = 0; pair < kMR / 2; ++pair) {
    const uint16_t* a0 = a + 2 * pair * lda;
    const uint16_t* a1 = a0 + lda;
    int32_t* out = acc + 64 * pair;  // rows 2 pair and 2 pair + 1, 32 columns each
    __m256i e0, o0, e1, o1, e2, o2, e3, o3;
    open_pair8<E>(out, e0, o0);
    open_pair8<E>(out + 16, e1, o1);
    open_pair8<E>(out + 32, e2, o2);
    open_pair8<E>(out + 48, e3, o3);
    for (int k = 0; k < kc; ++k) {
      const E* kb = wx + k * slab;
      const E* p0 = panel_row(kb, a0[k]);
      const E* p1 = panel_row(kb, a1[k]);
#define APPROXSIM_HALF(q, p)                                                  \
  {                                                                           \
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));       \
    asm("" : "+x"(v));                                                         \
    e##q = _mm256_add_epi32(e##q, kWholeWords<E> ? v : low_halves8<E>(v));     \
    o##q = _mm256_add_epi32(o##q, high_halves8<E>(v));                         \
  }
      APPROXSIM_HALF(0, p0)
      APPROXSIM_HALF(1, p0 + 16)
      APPROXSIM_HALF(2, p1)
      APPROXSIM_HALF(3, p1 + 16)
#undef APPROXSIM_HALF
      // Empty asm that keeps GCC 12 from copying 8 accumulators per step and loading every half row
      // twice (24 instructions per step instead of 32; the conv layer of bench_int.py 28.5-28.9 ->
      // 26.4-27.4 ms best, AMD Zen 4, 2 threads).
      asm("" : "+x"(e0), "+x"(o0), "+x"(e1), "+x"(o1), "+x"(e2), "+x"(o2), "+x"(e3), "+x"(o3));
    }
    close_pair8<E>(e0, o0, out);
    close_pair8<E>(e1, o1, out + 16);
    close_pair8<E>(e2, o2, out + 32);
    close_pair8<E>(e3, o3, out + 48);
  }
}

template <class E>
APPROXSIM_AVX2 void kernel_avx2_8(int kc, const uint16_t* a, int64_t lda, int64_t s1, const void* panel,
                                  int32_t* acc) {
  const E* wx = static_cast<const E*>(panel);
  __m256i c0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc));
  __m256i c1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + 8));
  __m256i c2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + 16));
  __m256i c3 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + 24));
  const int64_t slab = s1 * 8;
  for (int k = 0; k < kc; ++k) {
    const E* kb = wx + k * slab;
    c0 = _mm256_add_epi32(c0, load8<E>(panel_row(kb, a[k])));
    c1 = _mm256_add_epi32(c1, load8<E>(panel_row(kb, a[lda + k])));
    c2 = _mm256_add_epi32(c2, load8<E>(panel_row(kb, a[2 * lda + k])));
    c3 = _mm256_add_epi32(c3, load8<E>(panel_row(kb, a[3 * lda + k])));
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc), c0);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + 8), c1);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + 16), c2);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + 24), c3);
}

// AVX-512, 16-bit entries: one row of 16 columns is one widening load and one add.
template <class E>
APPROXSIM_AVX512 inline __m512i load16w(const E* p);
template <>
APPROXSIM_AVX512 inline __m512i load16w<uint16_t>(const uint16_t* p) {
  return _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
template <>
APPROXSIM_AVX512 inline __m512i load16w<int16_t>(const int16_t* p) {
  return _mm512_cvtepi16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
template <>
APPROXSIM_AVX512 inline __m512i load16w<int32_t>(const int32_t* p) {
  return _mm512_loadu_si512(p);
}

template <class E>
APPROXSIM_AVX512 void kernel_avx512_16(int kc, const uint16_t* a, int64_t lda, int64_t s1, const void* panel,
                                       int32_t* acc) {
  const E* wx = static_cast<const E*>(panel);
  __m512i c0 = _mm512_loadu_si512(acc), c1 = _mm512_loadu_si512(acc + 16);
  __m512i c2 = _mm512_loadu_si512(acc + 32), c3 = _mm512_loadu_si512(acc + 48);
  const int64_t slab = s1 * 16;
  for (int k = 0; k < kc; ++k) {
    const E* kb = wx + k * slab;
    c0 = _mm512_add_epi32(c0, load16w<E>(panel_row(kb, a[k])));
    c1 = _mm512_add_epi32(c1, load16w<E>(panel_row(kb, a[lda + k])));
    c2 = _mm512_add_epi32(c2, load16w<E>(panel_row(kb, a[2 * lda + k])));
    c3 = _mm512_add_epi32(c3, load16w<E>(panel_row(kb, a[3 * lda + k])));
  }
  _mm512_storeu_si512(acc, c0);
  _mm512_storeu_si512(acc + 16, c1);
  _mm512_storeu_si512(acc + 32, c2);
  _mm512_storeu_si512(acc + 48, c3);
}
#endif

// AVX-512, 16-bit entries, 32 columns: a panel row is one 64-byte line, whose 32-bit words hold two
// columns each: the even ones by a mask (unsigned) or shifts (signed) of the low halves, the odd ones
// by a shift of the high halves, each into its own accumulator (split from acc and merged back once
// per call): two adds per row and step for 32 columns, no widening shuffle. Unsigned entries save
// the mask (kWholeWords above).
template <class E>
APPROXSIM_AVX512 inline __m512i low_halves(__m512i v);
template <>
APPROXSIM_AVX512 inline __m512i low_halves<uint16_t>(__m512i v) {
  return _mm512_and_si512(v, _mm512_set1_epi32(0xFFFF));
}
template <>
APPROXSIM_AVX512 inline __m512i low_halves<int16_t>(__m512i v) {
  return _mm512_srai_epi32(_mm512_slli_epi32(v, 16), 16);
}
template <class E>
APPROXSIM_AVX512 inline __m512i high_halves(__m512i v) {
  return std::is_signed<E>::value ? _mm512_srai_epi32(v, 16) : _mm512_srli_epi32(v, 16);
}

template <class E>
APPROXSIM_AVX512 void kernel_avx512_32(int kc, const uint16_t* a, int64_t lda, int64_t s1, const void* panel,
                                       int32_t* acc) {
  static_assert(sizeof(E) == 2, "16-bit entries");
  const E* wx = static_cast<const E*>(panel);
  __m512i e0, o0, e1, o1, e2, o2, e3, o3;
  split_even_odd16(acc, e0, o0);
  split_even_odd16(acc + 32, e1, o1);
  split_even_odd16(acc + 64, e2, o2);
  split_even_odd16(acc + 96, e3, o3);
  const int64_t slab = s1 * 32;
  if constexpr (kWholeWords<E>) {
    e0 = _mm512_add_epi32(e0, _mm512_slli_epi32(o0, 16));
    e1 = _mm512_add_epi32(e1, _mm512_slli_epi32(o1, 16));
    e2 = _mm512_add_epi32(e2, _mm512_slli_epi32(o2, 16));
    e3 = _mm512_add_epi32(e3, _mm512_slli_epi32(o3, 16));
  }
  for (int k = 0; k < kc; ++k) {
    const E* kb = wx + k * slab;
#define APPROXSIM_ROW(r)                                                            \
  {                                                                                 \
    const __m512i v = _mm512_loadu_si512(panel_row(kb, a[r * lda + k]));            \
    e##r = _mm512_add_epi32(e##r, kWholeWords<E> ? v : low_halves<E>(v));                    \
    o##r = _mm512_add_epi32(o##r, high_halves<E>(v));                               \
  }
    APPROXSIM_ROW(0)
    APPROXSIM_ROW(1)
    APPROXSIM_ROW(2)
    APPROXSIM_ROW(3)
#undef APPROXSIM_ROW
  }
  if constexpr (kWholeWords<E>) {
    e0 = _mm512_sub_epi32(e0, _mm512_slli_epi32(o0, 16));
    e1 = _mm512_sub_epi32(e1, _mm512_slli_epi32(o1, 16));
    e2 = _mm512_sub_epi32(e2, _mm512_slli_epi32(o2, 16));
    e3 = _mm512_sub_epi32(e3, _mm512_slli_epi32(o3, 16));
  }
  merge_even_odd16(e0, o0, acc);
  merge_even_odd16(e1, o1, acc + 32);
  merge_even_odd16(e2, o2, acc + 64);
  merge_even_odd16(e3, o3, acc + 96);
}

using BuildFn = void (*)(const float*, int, const IntTable&, const RowMask*, void*);
using KernelFn = void (*)(int, const uint16_t*, int64_t, int64_t, const void*, int32_t*);

template <int NR, class E>
BuildFn select_build() {
#ifdef APPROXSIM_X86
  if constexpr (sizeof(E) == 2) {
    if (NR == 32 && simd_level() >= kAvx512) return build16_avx512_32;
    if constexpr (NR == 16 || NR == 32) {
      if (simd_level() >= kAvx2) return build16_avx2_wide<NR>;
    }
    if constexpr (NR == 8) {
      if (simd_level() >= kAvx2) return build16_avx2<NR, E>;
    }
  } else {
    if (simd_level() >= kAvx2) return build32_avx2<NR>;
  }
#endif
  return build_portable<NR, E>;
}
template <int NR, class E>
KernelFn select_kernel() {
#ifdef APPROXSIM_X86
  if constexpr (NR == 32 && sizeof(E) == 2) {
    if (simd_level() >= kAvx512) return kernel_avx512_32<E>;
    if (simd_level() >= kAvx2) return kernel_avx2_32w<E>;
  }
  if (NR == 16 && simd_level() >= kAvx512) return kernel_avx512_16<E>;
  if constexpr (NR == 16 && sizeof(E) == 2) {
    if (simd_level() >= kAvx2) return kernel_avx2_16w<E>;
  }
  if (simd_level() >= kAvx2) return NR == 16 ? kernel_avx2_16<E> : kernel_avx2_8<E>;
#endif
  return kernel_portable<NR, E>;
}

template <class ASrc, class BSrc, class Out>
struct IntJob {
  ASrc A;
  BSrc B;
  Out* C;
  int64_t ldc;
};

// Terms an int32 partial sum can take without overflow.
int64_t int32_terms(const IntTable& t) { return t.max_abs() > 0 ? INT32_MAX / t.max_abs() : INT64_MAX; }

// Rows of A per block of an expanded task: about 2^22 codes (8 MiB), or all the task's rows where
// fewer; each block builds every panel again. Measured (AMD Zen 4, 2 threads, medians of 20 in
// alternating runs, mul8u_2AC): the conv layer of bench_int.py, whose 4096-row tasks took two blocks
// of 2^21 codes (3640 and 456 rows), 26.6-27.5 -> 24.6-24.7 ms (AVX2 level), 24.8-25.2 -> 21.4-22.5 ms
// (VBMI); GEMM 1024^3 (one block either way) unchanged.
int64_t expanded_block_rows(int64_t rows, int64_t K) {
  return std::max<int64_t>(kMR, std::min<int64_t>((rows + kMR - 1) / kMR * kMR,
                                                  (int64_t(4) << 20) / std::max<int64_t>(K, 1) / kMR * kMR));
}

// The codes of a block of mc rows of A as the expanded kernels read them: by contraction chunk of kcx
// steps, so that the kernel reads each chunk's rows as one stream (row r, step k of chunk q at
// q * chunk + r * kcx + k - q * kcx), each code as its panel row's offset (kRowUnits); the rows of
// the last panel past mc are 0 (no product). block_codes: the codes of a block of mc rows.
size_t chunk_codes(int mc, int kcx) { return size_t((mc + kMR - 1) / kMR) * kMR * kcx; }
size_t block_codes(int mc, int64_t K, int kcx) { return size_t((K + kcx - 1) / kcx) * chunk_codes(mc, kcx); }

// The codes an operand source packs: encoded codes as floats, or as 16-bit integers (PatchA16), in
// the work buffer of their type.
template <class ASrc>
struct PackedCode {
  using type = float;
};
template <>
struct PackedCode<PatchA16> {
  using type = uint16_t;
};
template <class ASrc>
constexpr bool kFloatCodes = std::is_same<typename PackedCode<ASrc>::type, float>::value;
template <class ASrc>
auto& raw_codes(IntWork& w) {
  if constexpr (kFloatCodes<ASrc>) return (w.araw);
  else return (w.araw16);
}

// Rows [rb0, rb1) (rb0 a multiple of kPackRows) of the block of mc rows from row ic into dst, the
// block's codes: packed as the source's codes (floats, or 16-bit integers) kPackRows rows at a time
// (which stay in L1/L2), then narrowed to row offsets; the
// groups of their codes are added to used[k] for each of the K steps (used null: not found). The
// padding rows are written with the block's last rows.
template <int NR, class E, class ASrc>
void pack_codes(const ASrc& A, int64_t ic, int mc, int rb0, int rb1, int64_t K, int kcx, IntWork& w,
                uint16_t* dst, RowMask* used) {
  auto& raw = raw_codes<ASrc>(w);
  const int64_t chunks = (K + kcx - 1) / kcx;
  const size_t chunk = chunk_codes(mc, kcx);
  raw.resize(size_t(kPackRows) * K);
  for (int rb = rb0; rb < rb1; rb += kPackRows) {
    const int nrows = std::min(kPackRows, rb1 - rb);
    A.pack(ic + rb, nrows, 0, static_cast<int>(K), raw.data(), static_cast<int>(K));
    for (int64_t q = 0; q < chunks; ++q) {
      const int64_t k0 = q * kcx, kc = std::min<int64_t>(kcx, K - k0);
      uint16_t* d = dst + q * chunk + size_t(rb) * kcx;
      for (int r = 0; r < nrows; ++r) {
        const auto* src = raw.data() + size_t(r) * K + k0;
        for (int64_t k = 0; k < kc; ++k) d[size_t(r) * kcx + k] = static_cast<uint16_t>(src[k]) * kRowUnits<NR, E>;
        if (used != nullptr)  // a loop of its own: the one above stays vectorized
          for (int64_t k = 0; k < kc; ++k) used[k0 + k] |= code_group_bit(static_cast<uint32_t>(src[k]));
      }
    }
  }
  if (rb1 == mc)
    for (int64_t q = 0; q < chunks; ++q)
      std::fill(dst + q * chunk + size_t(mc) * kcx, dst + (q + 1) * chunk, uint16_t(0));
}

// Whether a block of mc rows finds its panel rows (pack_codes' masks): where its panels' rows (s1
// for each of `panels` column panels) are more than its own (each costs one mask update per step;
// measured, AMD Zen 5, one thread: the ResNet layer of bench_int.py, 3640-row blocks and 2 panels,
// 35 -> 44 ms with the masks found in the narrowing loop, which then no longer vectorized; GEMM
// 1024^3, 1024 rows and 32 panels, 30-32 -> 29-30 ms).
bool finds_rows(int64_t mc, int64_t s1, int64_t panels) { return s1 * panels >= mc; }

// A job's codes packed once for all its tiles: the blocks of rows, block_codes of a full block apart,
// each block packed by `pieces` tasks, each with its own row masks (K steps, piece after piece;
// used null: not found, every panel row built).
struct SharedCodes {
  const uint16_t* codes;
  const RowMask* used;
  int64_t pieces;
};

// Rows [r0, r1) x columns [c0, c1) of one job, all of the contraction, by expanded panels NR wide
// with entries of type E, kcx contraction steps per panel (expanded_kc, chosen once by run_expanded
// for the shared packing and the panels alike). shared: the blocks of rows [r0, r1) packed by
// pack_codes, or codes null: packed here.
template <int NR, class E, class ASrc, class BSrc, class Out>
void task_expanded(const IntJob<ASrc, BSrc, Out>& job, int64_t r0, int64_t r1, int64_t c0, int64_t c1, int64_t K,
                   int kcx, const IntTable& t, const SharedCodes& shared, IntWork& w) {
  const int64_t s1 = t.s1;
  const int64_t limit = int32_terms(t);
  const bool carry = K > limit;  // partial sums go to int64 every `limit` terms
  const BuildFn build = select_build<NR, E>();
  const KernelFn kernel = select_kernel<NR, E>();
  const int64_t rc = expanded_block_rows(r1 - r0, K);
  const size_t full_block = block_codes(static_cast<int>(rc), K, kcx);
  const uint16_t* codes = shared.codes;
  if (codes == nullptr) w.a16.resize(full_block);
  w.used.resize(size_t(K));
  RowMask* used = w.used.data();
  w.braw.resize(size_t(kcx) * NR);
  w.wx.resize((size_t(kcx) * s1 * NR * sizeof(E) + 64) / sizeof(int32_t) + 16);
  void* wx = w.wx.data();  // on a cache line: panel rows start on cache lines
  w.acc32.resize(size_t(rc) * NR);
  if (carry) w.acc64.resize(size_t(rc) * NR);
  for (int64_t ic = r0; ic < r1; ic += rc) {
    const int mc = static_cast<int>(std::min<int64_t>(rc, r1 - ic));
    const int mpan = (mc + kMR - 1) / kMR;
    const size_t chunk = chunk_codes(mc, kcx);
    const int64_t block = (ic - r0) / rc;
    const uint16_t* a16 = codes != nullptr ? codes + size_t(block) * full_block : w.a16.data();
    const bool find = codes == nullptr ? finds_rows(mc, s1, (c1 - c0 + NR - 1) / NR) : shared.used != nullptr;
    std::fill(used, used + K, find ? RowMask(0) : ~RowMask(0));
    if (codes == nullptr) {
      pack_codes<NR, E>(job.A, ic, mc, 0, mc, K, kcx, w, w.a16.data(), find ? used : nullptr);
    } else if (find) {
      for (int64_t p = 0; p < shared.pieces; ++p) {
        const RowMask* piece = shared.used + (block * shared.pieces + p) * K;
        for (int64_t k = 0; k < K; ++k) used[k] |= piece[k];
      }
    }
    for (int64_t col0 = c0; col0 < c1; col0 += NR) {
      const int cols = static_cast<int>(std::min<int64_t>(NR, c1 - col0));
      int32_t* acc = w.acc32.data();
      std::memset(acc, 0, sizeof(int32_t) * size_t(mpan) * kMR * NR);
      if (carry) std::fill(w.acc64.begin(), w.acc64.begin() + size_t(mpan) * kMR * NR, 0);
      int64_t terms = 0;
      for (int64_t k0 = 0; k0 < K; k0 += kcx) {
        const int kc = static_cast<int>(std::min<int64_t>(kcx, K - k0));
        job.B.pack(k0, kc, col0, cols, w.braw.data(), NR);
        build(w.braw.data(), kc, t, used + k0, wx);
        if (carry && terms + kc > limit) {
          for (size_t q = 0; q < size_t(mpan) * kMR * NR; ++q) w.acc64[q] += acc[q];
          std::memset(acc, 0, sizeof(int32_t) * size_t(mpan) * kMR * NR);
          terms = 0;
        }
        for (int ip = 0; ip < mpan; ++ip)
          kernel(kc, a16 + (k0 / kcx) * chunk + size_t(ip) * kMR * kcx, kcx, s1, wx, acc + size_t(ip) * kMR * NR);
        terms += kc;
      }
      for (int r = 0; r < mc; ++r)
        for (int c = 0; c < cols; ++c) {
          const size_t q = size_t(r) * NR + c;
          job.C[(ic + r) * job.ldc + col0 + c] = static_cast<Out>(carry ? w.acc64[q] + acc[q] : acc[q]);
        }
    }
  }
}

// Rows [r0, r1) x columns [c0, c1), one lookup per product, int64 sums.
template <class ASrc, class BSrc, class Out>
void task_lookup(const IntJob<ASrc, BSrc, Out>& job, int64_t r0, int64_t r1, int64_t c0, int64_t c1, int64_t K,
                 const IntTable& t, IntWork& w) {
  constexpr int MC = 32, NC = 256, KC = 256;
  const int64_t s1 = t.s1;
  const int32_t* T = t.t.data();
  w.araw.resize(size_t(MC) * KC);
  w.braw.resize(size_t(KC) * NC);
  w.aoff.resize(size_t(MC) * KC);
  w.bidx.resize(size_t(KC) * NC);
  w.acc64.resize(size_t(MC) * NC);
  for (int64_t i0 = r0; i0 < r1; i0 += MC) {
    const int mc = static_cast<int>(std::min<int64_t>(MC, r1 - i0));
    for (int64_t j0 = c0; j0 < c1; j0 += NC) {
      const int nc = static_cast<int>(std::min<int64_t>(NC, c1 - j0));
      std::fill(w.acc64.begin(), w.acc64.end(), 0);
      for (int64_t k0 = 0; k0 < K; k0 += KC) {
        const int kc = static_cast<int>(std::min<int64_t>(KC, K - k0));
        job.A.pack(i0, mc, k0, kc, w.araw.data(), KC);
        job.B.pack(k0, kc, j0, nc, w.braw.data(), NC);
        for (int q = 0; q < mc * KC; ++q) w.aoff[q] = static_cast<int32_t>(w.araw[q]) * static_cast<int32_t>(s1);
        for (int q = 0; q < kc * NC; ++q) w.bidx[q] = static_cast<int32_t>(w.braw[q]);
        for (int r = 0; r < mc; ++r) {
          int64_t* acc = w.acc64.data() + size_t(r) * NC;
          for (int k = 0; k < kc; ++k) {
            const int32_t* row = T + w.aoff[size_t(r) * KC + k];
            const int32_t* bj = w.bidx.data() + size_t(k) * NC;
            for (int c = 0; c < nc; ++c) acc[c] += row[bj[c]];
          }
        }
      }
      for (int r = 0; r < mc; ++r)
        for (int c = 0; c < nc; ++c) job.C[(i0 + r) * job.ldc + j0 + c] = static_cast<Out>(w.acc64[size_t(r) * NC + c]);
    }
  }
}

// Shared packed codes of A, at most (bytes): above, each task packs its own blocks.
constexpr int64_t kMaxSharedCodeBytes = int64_t(64) << 20;
constexpr int kPieceRows = 8 * kPackRows;  // rows of a block packed per task of the shared packing

// Every job (same M, N, K) by expanded panels NR wide with entries E: batch entries and groups, with
// their tiles, in one parallel loop; per_job: tiles wanted per job.
template <int NR, class E, class ASrc, class BSrc, class Out>
void run_expanded(const std::vector<IntJob<ASrc, BSrc, Out>>& jobs, int64_t M, int64_t N, int64_t K,
                  const IntTable& t, int threads, int64_t per_job) {
  const int64_t njobs = static_cast<int64_t>(jobs.size());
  const int64_t col_panels = (N + NR - 1) / NR;
  // Split the rows where every task keeps at least 4 * s1 of them (each panel serves them all);
  // else the columns.
  const int64_t row_tasks = std::max<int64_t>(1, std::min<int64_t>(per_job, M / (4 * t.s1)));
  const int64_t tasks_n = std::min(per_job / row_tasks, col_panels);
  const int64_t tasks_m = std::max<int64_t>(1, std::min<int64_t>(per_job / tasks_n, (M + 63) / 64));
  const int64_t tiles = tasks_m * tasks_n;
  // Tiles that split the columns only share each job's packed A codes: packed once, in parallel,
  // before the panels (on 2 threads a GEMM 1024^3's 8 column tiles each packed all of A: medians 19.0-26.9 ms
  // -> 18.3-24.8 ms with the packing shared, in alternating runs).
  const int kcx = expanded_kc<NR, E>(t.s1, K);
  const int64_t rc = expanded_block_rows(M, K), blocks = (M + rc - 1) / rc;
  const size_t full_block = block_codes(static_cast<int>(rc), K, kcx), per_job_codes = size_t(blocks) * full_block;
  const bool share = tasks_n > 1 && tasks_m == 1 &&
                     int64_t(njobs * per_job_codes * sizeof(uint16_t)) <= kMaxSharedCodeBytes;
  LineVector<uint16_t> shared(share ? njobs * per_job_codes : 0);
  const int64_t pieces = (rc + kPieceRows - 1) / kPieceRows;
  const bool find = share && finds_rows(rc, t.s1, col_panels);
  std::vector<RowMask> shared_used(find ? size_t(njobs * blocks * pieces * K) : 0, RowMask(0));
  if (share) {
    ThreadPool::instance().parallel_for(static_cast<int>(njobs * blocks * pieces), threads, [&](int task) {
      const int64_t j = task / (blocks * pieces), b = task / pieces % blocks, p = task % pieces;
      const int64_t ic = b * rc;
      const int mc = static_cast<int>(std::min<int64_t>(rc, M - ic)), rb0 = static_cast<int>(p * kPieceRows);
      if (rb0 >= mc) return;
      pack_codes<NR, E>(jobs[j].A, ic, mc, rb0, std::min(mc, rb0 + kPieceRows), K, kcx, int_scratch(),
                        shared.data() + j * per_job_codes + b * full_block,
                        find ? shared_used.data() + ((j * blocks + b) * pieces + p) * K : nullptr);
    });
  }
  ThreadPool::instance().parallel_for(static_cast<int>(njobs * tiles), threads, [&](int task) {
    const int64_t j = task / tiles, tile = task % tiles, tm = tile / tasks_n, tn = tile % tasks_n;
    const int64_t r0 = M * tm / tasks_m / kMR * kMR, r1 = tm + 1 == tasks_m ? M : M * (tm + 1) / tasks_m / kMR * kMR;
    const int64_t c0 = col_panels * tn / tasks_n * NR, c1 = std::min(N, col_panels * (tn + 1) / tasks_n * NR);
    if (r0 >= r1 || c0 >= c1) return;
    const SharedCodes codes =
        share ? SharedCodes{shared.data() + j * per_job_codes, find ? shared_used.data() + j * blocks * pieces * K
                                                                    : nullptr, pieces}
              : SharedCodes{nullptr, nullptr, 0};
    task_expanded<NR, E>(jobs[j], r0, r1, c0, c1, K, kcx, t, codes, int_scratch());
  });
}

// run_expanded with the narrowest entries for the table.
template <int NR, class ASrc, class BSrc, class Out>
void run_expanded_of_width(const std::vector<IntJob<ASrc, BSrc, Out>>& jobs, int64_t M, int64_t N, int64_t K,
                           const IntTable& t, int threads, int64_t per_job) {
  if (t.fits_uint16()) return run_expanded<NR, uint16_t>(jobs, M, N, K, t, threads, per_job);
  if (t.fits_int16()) return run_expanded<NR, int16_t>(jobs, M, N, K, t, threads, per_job);
  run_expanded<NR, int32_t>(jobs, M, N, K, t, threads, per_job);
}

// Every job (same M, N, K) by the exact-product GEMM: B of every job packed once, in parallel by
// block and panel, then tiles of rows (and of columns where the rows are too few for the tiles
// wanted) in one parallel loop.
template <class ASrc, class BSrc, class Out>
void run_exact(const std::vector<IntJob<ASrc, BSrc, Out>>& jobs, int64_t M, int64_t N, int64_t K, const IntTable& t,
               int threads, int64_t per_job) {
  const int64_t njobs = static_cast<int64_t>(jobs.size());
  const int nr = int_exact::panel_width();
  const int64_t panels = (N + nr - 1) / nr, blocks = (K + int_exact::kExactBlock - 1) / int_exact::kExactBlock;
  const size_t words = int_exact::packed_b_words(K, N, nr);
  LineVector<uint32_t> bpack(size_t(njobs) * words);
  ThreadPool::instance().parallel_for(static_cast<int>(njobs * blocks * panels), threads, [&](int task) {
    const int64_t j = task / (blocks * panels), kb = task / panels % blocks, jp = task % panels;
    int_exact::pack_b(jobs[j].B, K, N, kb, jp, nr, t,
                      bpack.data() + j * words + size_t(kb * panels + jp) * (int_exact::kExactBlock / 2) * nr,
                      int_scratch().exact);
  });
  const int64_t tasks_m = std::max<int64_t>(1, std::min<int64_t>(per_job, (M + 63) / 64));
  const int64_t tasks_n = std::max<int64_t>(1, std::min<int64_t>((per_job + tasks_m - 1) / tasks_m, panels));
  const int64_t tiles = tasks_m * tasks_n;
  ThreadPool::instance().parallel_for(static_cast<int>(njobs * tiles), threads, [&](int task) {
    const int64_t j = task / tiles, tile = task % tiles, tm = tile / tasks_n, tn = tile % tasks_n;
    const int64_t r0 = M * tm / tasks_m, r1 = M * (tm + 1) / tasks_m;
    const int64_t c0 = panels * tn / tasks_n * nr, c1 = std::min(N, panels * (tn + 1) / tasks_n * nr);
    if (r0 < r1 && c0 < c1)
      int_exact::task(jobs[j].A, bpack.data() + j * words, jobs[j].C, jobs[j].ldc, r0, r1, c0, c1, K, N, t,
                      int_scratch().exact);
  });
}

// Every job (same M, N, K): batch entries and groups, with their tiles, in one parallel loop.
template <class ASrc, class BSrc, class Out>
void run_int_jobs(const std::vector<IntJob<ASrc, BSrc, Out>>& jobs, int64_t M, int64_t N, int64_t K,
                  const IntTable& t, int threads) {
  if (jobs.empty() || M <= 0 || N <= 0) return;
  const int64_t njobs = static_cast<int64_t>(jobs.size());
  if (K <= 0) {
    for (const auto& job : jobs)
      for (int64_t r = 0; r < M; ++r) std::fill(job.C + r * job.ldc, job.C + r * job.ldc + N, Out(0));
    return;
  }
  if (njobs * M * N * K < (int64_t(1) << 16)) threads = 1;
  const IntMethod method = choose(t, M);
  note_method(method == IntMethod::kExact      ? Method::kExact
              : method == IntMethod::kExpanded ? Method::kExpanded
                                               : Method::kLookup, false);
  const int64_t want = threads > 1 ? int64_t(4) * threads : 1;
  const int64_t per_job = std::max<int64_t>(1, (want + njobs - 1) / njobs);
  if (!kFloatCodes<ASrc> || method == IntMethod::kExpanded) {  // 16-bit codes: for the expanded kernels only
    // The panel width from the output's columns: 8 for at most 8; 32 (16-bit entries: a panel row is
    // one 64-byte line) for more than 16; else 16. Measured at the AVX2 level (AMD Zen 4, 2 threads,
    // medians of 15 in alternating runs, mul8u_2AC): GEMM 1024^3 27.3-27.7 -> 24.4-24.7 ms, the conv
    // layer of bench_int.py 35.0-36.2 -> 30.5-31.0 ms against 16 columns; int8 (signed entries, the
    // expanded method forced) 31.3 -> 29.3-31.8 and 34.2-34.7 -> 32.2-34.5.
    if (N <= 8) return run_expanded_of_width<8>(jobs, M, N, K, t, threads, per_job);
    if (N > 16 && simd_level() >= kAvx2) {
      if (t.fits_uint16()) return run_expanded<32, uint16_t>(jobs, M, N, K, t, threads, per_job);
      if (t.fits_int16()) return run_expanded<32, int16_t>(jobs, M, N, K, t, threads, per_job);
    }
    return run_expanded_of_width<16>(jobs, M, N, K, t, threads, per_job);
  }
  if constexpr (kFloatCodes<ASrc>) {
    if (method == IntMethod::kExact) return run_exact(jobs, M, N, K, t, threads, per_job);
    const int64_t tasks_m = std::max<int64_t>(1, std::min<int64_t>(per_job, (M + 63) / 64));
    ThreadPool::instance().parallel_for(static_cast<int>(njobs * tasks_m), threads, [&](int task) {
      const int64_t tm = task % tasks_m;
      const int64_t r0 = M * tm / tasks_m / kMR * kMR;
      const int64_t r1 = tm + 1 == tasks_m ? M : M * (tm + 1) / tasks_m / kMR * kMR;
      if (r0 < r1) task_lookup(jobs[task / tasks_m], r0, r1, 0, N, K, t, int_scratch());
    });
  }
}

}  // namespace

const char* int_method_for(const IntTable& t, int64_t rows) {
  const IntMethod m = choose(t, rows);
  return m == IntMethod::kExact ? "exact" : m == IntMethod::kExpanded ? "expanded" : "lookup";
}

template <class Out>
void int_matmul_batched(const float* a, const float* b, Out* c, const int64_t* a_index, const int64_t* b_index,
                        int64_t batch, int64_t a_size, int64_t b_size, int64_t m, int64_t n, int64_t k, bool ta,
                        bool tb, const IntTable& t, int threads) {
  std::vector<IntJob<StridedA, GeneralB, Out>> jobs;
  jobs.reserve(batch);
  for (int64_t q = 0; q < batch; ++q) {
    const float* A = a + a_index[q] * a_size;
    const float* B = b + b_index[q] * b_size;
    jobs.push_back({StridedA{A, ta ? 1 : k, ta ? m : 1}, GeneralB{B, std::max<int64_t>(k, 1), 0, tb ? 1 : n,
                    tb ? k : 1}, c + q * m * n, n});
  }
  run_int_jobs(jobs, m, n, k, t, threads);
}

template <class Out>
void int_conv2d_forward(const float* x, const float* w, Out* y, const Geom& g, const IntTable& t, int threads) {
  const int64_t cig = cin_per_group(g), cog = cout_per_group(g), K = g.kh * g.kw * cig, M = g.n * g.oh * g.ow;
  if (choose(t, M) == IntMethod::kExpanded) {
    // The input's codes as 16-bit integers once: the patches (kh * kw times as many) are then copied
    // at half the bytes, and not narrowed from floats one by one. Measured (AMD Zen 5, VBMI
    // level, mul8u_2AC, alternating builds): the ResNet layer of bench_int.py, one thread, medians of 6
    // runs 27.4-30.6 -> 26.4-31.8 ms (best 26.6-28.9 -> 25.7-28.0).
    const int64_t count = g.n * g.h * g.w * g.c;
    LineVector<uint16_t> x16(static_cast<size_t>(count));
    for_chunks(count, threads, [&](int64_t q0, int64_t q1) {
      for (int64_t q = q0; q < q1; ++q) x16[q] = static_cast<uint16_t>(x[q]);
    });
    std::vector<IntJob<PatchA16, GeneralB, Out>> jobs;
    for (int64_t grp = 0; grp < g.groups; ++grp)
      jobs.push_back({PatchA16{x16.data(), g, grp * cig}, GeneralB{w + grp * cog, K, 0, g.cout, 1}, y + grp * cog,
                      g.cout});
    return run_int_jobs(jobs, M, cog, K, t, threads);
  }
  std::vector<IntJob<PatchA, GeneralB, Out>> jobs;
  for (int64_t grp = 0; grp < g.groups; ++grp)
    jobs.push_back({PatchA{x, g, grp * cig}, GeneralB{w + grp * cog, K, 0, g.cout, 1}, y + grp * cog, g.cout});
  run_int_jobs(jobs, M, cog, K, t, threads);
}

template <class Out>
void int_conv2d_input_grad(const float* dy, const float* w, Out* dx, const Geom& g, const IntTable& t, int threads) {
  const int64_t cig = cin_per_group(g), cog = cout_per_group(g), K = g.kh * g.kw * cog, M = g.n * g.h * g.w;
  std::vector<IntJob<GatherDyA, GeneralB, Out>> jobs;
  for (int64_t grp = 0; grp < g.groups; ++grp)
    jobs.push_back({GatherDyA{dy, g, grp * cog}, GeneralB{w + grp * cog, cog, cig * g.cout, 1, g.cout},
                    dx + grp * cig, g.c});
  run_int_jobs(jobs, M, cig, K, t, threads);
}

template <class Out>
void int_conv2d_filter_grad(const float* x, const float* dy, Out* dw, const Geom& g, const IntTable& t, int threads) {
  const int64_t cig = cin_per_group(g), cog = cout_per_group(g), M = g.kh * g.kw * cig, K = g.n * g.oh * g.ow;
  std::vector<IntJob<PatchTA, GeneralB, Out>> jobs;
  for (int64_t grp = 0; grp < g.groups; ++grp)
    jobs.push_back({PatchTA{x, g, grp * cig}, GeneralB{dy + grp * cog, std::max<int64_t>(K, 1), 0, g.cout, 1},
                    dw + grp * cog, g.cout});
  run_int_jobs(jobs, M, cog, K, t, threads);
}

#define APPROXSIM_INT_ENTRY_POINTS(Out)                                                                              \
  template void int_matmul_batched<Out>(const float*, const float*, Out*, const int64_t*, const int64_t*, int64_t,   \
                                        int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool, const IntTable&, int); \
  template void int_conv2d_forward<Out>(const float*, const float*, Out*, const Geom&, const IntTable&, int);       \
  template void int_conv2d_input_grad<Out>(const float*, const float*, Out*, const Geom&, const IntTable&, int);    \
  template void int_conv2d_filter_grad<Out>(const float*, const float*, Out*, const Geom&, const IntTable&, int);
APPROXSIM_INT_ENTRY_POINTS(int32_t)
APPROXSIM_INT_ENTRY_POINTS(int64_t)
#undef APPROXSIM_INT_ENTRY_POINTS

}  // namespace approxsim
