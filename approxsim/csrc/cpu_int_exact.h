// cpu_int_exact.h: the integer GEMM of exact-product tables (T[p][q] = v(p) * v(q), the codes'
// values: the exact int8 / uint8 / int4 / uint4 built-ins, EvoApproxLib's exact mul8u_1JFF).
//
// Such a table needs no lookup: the products are computed. Operands are packed as 16-bit values in
// pairs along the contraction, (v[k], v[k + 1]) in one 32-bit word, and the micro-kernels multiply
// pairs and add them into int32 lanes (vpmaddwd: v0 * w0 + v1 * w1 exactly), a broadcast word of A
// against a panel row of B. Values have at most 8 bits (|v| <= 255), so a pair is at most 2 * 255^2
// and an int32 lane takes kExactBlock steps without overflow; each block's sums are added into C (its
// type: int32 where the caller found that no sum can overflow it, else int64). Encoded operands
// (cpu_int.h: pattern + 1, 0 for no product) become values as they are packed (values_of), encoding
// 0 becoming 0: no product. B is packed once per call, shared by the tiles; each tile packs its rows
// of A. The results are DESIGN.md section 1b's exactly (integer sums are exact in any order).
#ifndef APPROXSIM_CPU_INT_EXACT_H_
#define APPROXSIM_CPU_INT_EXACT_H_

#include <algorithm>
#include <cstdint>

#include "cpu_aligned.h"
#include "cpu_int.h"
#include "cpu_isa.h"
#include "cpu_simd.h"

namespace approxsim {
namespace int_exact {

constexpr int kMR = 4;             // rows of a micro-tile
// Contraction steps per packed block: 512 pairs, at most 2 * 255^2 each, so an int32 lane cannot
// overflow (it could take 16,000 pairs); its B panels (64 KiB at 32 columns) stay in L2.
constexpr int kExactBlock = 1024;
constexpr int kExactRows = 64;     // rows of A whose packed pairs serve each column panel of a tile in turn
constexpr int kMaxExactBits = 8;   // values of at most 8 bits: pairs of products fit int32 by far

inline uint32_t pair_word(int16_t lo, int16_t hi) {
  return static_cast<uint16_t>(lo) | (static_cast<uint32_t>(static_cast<uint16_t>(hi)) << 16);
}

// acc[r * NR + c] = sum over p < pairs of the pair products of a[r * pairs + p] and b[p * NR + c].
template <int NR>
void kernel_portable(int pairs, const uint32_t* a, const uint32_t* b, int32_t* acc) {
  for (int q = 0; q < kMR * NR; ++q) acc[q] = 0;
  for (int p = 0; p < pairs; ++p)
    for (int r = 0; r < kMR; ++r) {
      const uint32_t aw = a[r * pairs + p];
      const int32_t a0 = static_cast<int16_t>(aw & 0xFFFF), a1 = static_cast<int16_t>(aw >> 16);
      for (int c = 0; c < NR; ++c) {
        const uint32_t bw = b[p * NR + c];
        acc[r * NR + c] += a0 * static_cast<int16_t>(bw & 0xFFFF) + a1 * static_cast<int16_t>(bw >> 16);
      }
    }
}

#ifdef APPROXSIM_X86
// 16 columns, two 8-lane vectors per row.
APPROXSIM_AVX2 inline void kernel_avx2(int pairs, const uint32_t* a, const uint32_t* b, int32_t* acc) {
  __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (int p = 0; p < pairs; ++p) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + p * 16));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + p * 16 + 8));
    const uint32_t* ap = a + p;
#define APPROXSIM_ROW(r)                                                  \
  {                                                                       \
    const __m256i x = _mm256_set1_epi32(static_cast<int>(ap[r * pairs])); \
    c##r##0 = _mm256_add_epi32(c##r##0, _mm256_madd_epi16(x, b0));        \
    c##r##1 = _mm256_add_epi32(c##r##1, _mm256_madd_epi16(x, b1));        \
  }
    APPROXSIM_ROW(0)
    APPROXSIM_ROW(1)
    APPROXSIM_ROW(2)
    APPROXSIM_ROW(3)
#undef APPROXSIM_ROW
  }
  __m256i* out = reinterpret_cast<__m256i*>(acc);
  _mm256_storeu_si256(out + 0, c00);
  _mm256_storeu_si256(out + 1, c01);
  _mm256_storeu_si256(out + 2, c10);
  _mm256_storeu_si256(out + 3, c11);
  _mm256_storeu_si256(out + 4, c20);
  _mm256_storeu_si256(out + 5, c21);
  _mm256_storeu_si256(out + 6, c30);
  _mm256_storeu_si256(out + 7, c31);
}

// 32 columns, two 16-lane vectors per row, stamped twice: with a multiply of pairs and an add
// (AVX-512BW), and with AVX512-VNNI's fused multiply-add of pairs (vpdpwssd), which the VBMI level
// takes where the CPU has it (every VBMI CPU but Cannon Lake): GEMM 1024^3 int8, 2 threads, in
// alternating runs in one process, 4.12-4.62 -> 3.97-4.46 ms (about 4%).
#define APPROXSIM_VNNI __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma")))
#define APPROXSIM_MADD_ADD(c, x, b) _mm512_add_epi32(c, _mm512_madd_epi16(x, b))
// Named accumulators: GCC 12 keeps an array of them in memory (measured: 5.3 ms against 4.5).
#define APPROXSIM_EXACT_ROW512(STEP, r)                                      \
  {                                                                          \
    const __m512i x = _mm512_set1_epi32(static_cast<int>(ap[r * pairs]));    \
    c##r##0 = STEP(c##r##0, x, b0);                                          \
    c##r##1 = STEP(c##r##1, x, b1);                                          \
  }
#define APPROXSIM_EXACT_KERNEL512(ATTR, NAME, STEP)                                                        \
  ATTR inline void NAME(int pairs, const uint32_t* a, const uint32_t* b, int32_t* acc) {                   \
    __m512i c00 = _mm512_setzero_si512(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, \
            c31 = c00;                                                                                     \
    for (int p = 0; p < pairs; ++p) {                                                                      \
      const __m512i b0 = _mm512_loadu_si512(b + p * 32), b1 = _mm512_loadu_si512(b + p * 32 + 16);         \
      const uint32_t* ap = a + p;                                                                          \
      APPROXSIM_EXACT_ROW512(STEP, 0)                                                                      \
      APPROXSIM_EXACT_ROW512(STEP, 1)                                                                      \
      APPROXSIM_EXACT_ROW512(STEP, 2)                                                                      \
      APPROXSIM_EXACT_ROW512(STEP, 3)                                                                      \
    }                                                                                                      \
    _mm512_storeu_si512(acc + 0, c00);                                                                     \
    _mm512_storeu_si512(acc + 16, c01);                                                                    \
    _mm512_storeu_si512(acc + 32, c10);                                                                    \
    _mm512_storeu_si512(acc + 48, c11);                                                                    \
    _mm512_storeu_si512(acc + 64, c20);                                                                    \
    _mm512_storeu_si512(acc + 80, c21);                                                                    \
    _mm512_storeu_si512(acc + 96, c30);                                                                    \
    _mm512_storeu_si512(acc + 112, c31);                                                                   \
  }
APPROXSIM_EXACT_KERNEL512(APPROXSIM_AVX512, kernel_avx512, APPROXSIM_MADD_ADD)
APPROXSIM_EXACT_KERNEL512(APPROXSIM_VNNI, kernel_vnni, _mm512_dpwssd_epi32)
#undef APPROXSIM_EXACT_KERNEL512
#undef APPROXSIM_EXACT_ROW512
#undef APPROXSIM_MADD_ADD
#undef APPROXSIM_VNNI
inline bool has_vnni() {
  static const bool yes = __builtin_cpu_supports("avx512vnni");
  return yes;
}
#endif

using KernelFn = void (*)(int, const uint32_t*, const uint32_t*, int32_t*);

// The panel width of the level's kernel: 32 columns on AVX-512, else 16.
inline int panel_width() { return simd_level() >= kAvx512 ? 32 : 16; }
inline KernelFn select_kernel(int nr) {
#ifdef APPROXSIM_X86
  if (nr == 32) return simd_level() >= kAvx512Vbmi && has_vnni() ? kernel_vnni : kernel_avx512;
  if (simd_level() >= kAvx2) return kernel_avx2;
#endif
  return nr == 32 ? kernel_portable<32> : kernel_portable<16>;
}

// The working memory of pack_b and task: part of the integer driver's per-thread scratch
// (cpu_int.cpp's IntWork), so that a thread holds one set of buffers for every integer method.
struct Work {
  LineVector<float> raw;
  LineVector<uint32_t> apack;
  LineVector<int32_t> vals, tile;
};

// The values of n encoded operands (floats e in 0 .. 2^bits, checked by the caller): e - 1 as an
// unsigned code or, for signed codes, that pattern as two's complement; encoding 0 (no product) is 0.
inline void values_of(const float* e, int n, int bits, bool is_signed, int32_t* v) {
  const int32_t half = 1 << (bits - 1), wrap = is_signed ? 1 << bits : 0;
  for (int q = 0; q < n; ++q) {  // branch-free, so that it vectorizes
    const int32_t p = std::max(static_cast<int32_t>(e[q]) - 1, 0);
    v[q] = p - (p >= half ? wrap : 0);
  }
}

// B of a job packed for the kernels: blocks of kExactBlock steps, each as panels of nr columns of
// pair words, (block * panels + panel) * kExactBlock / 2 * nr words apart.
inline size_t packed_b_words(int64_t K, int64_t N, int nr) {
  return size_t((K + kExactBlock - 1) / kExactBlock) * size_t((N + nr - 1) / nr) * (kExactBlock / 2) * nr;
}
// Block kb, panel jp of B into dst (its place in the packed B).
template <class BSrc>
void pack_b(const BSrc& B, int64_t K, int64_t N, int64_t kb, int64_t jp, int nr, const IntTable& t, uint32_t* dst,
            Work& w) {
  const int64_t k0 = kb * kExactBlock;
  const int kc = static_cast<int>(std::min<int64_t>(kExactBlock, K - k0)), pairs = (kc + 1) / 2;
  const int nc = static_cast<int>(std::min<int64_t>(nr, N - jp * nr));
  w.raw.resize(size_t(kExactBlock) * nr);
  LineVector<int32_t>& v = w.vals;
  v.resize(size_t(kExactBlock + 1) * nr);
  B.pack(k0, kc, jp * nr, nc, w.raw.data(), nr);
  values_of(w.raw.data(), kc * nr, t.bits, t.exact == 2, v.data());
  if (kc % 2) std::fill(v.data() + size_t(kc) * nr, v.data() + size_t(kc + 1) * nr, 0);  // an odd last step pairs with 0
  for (int p = 0; p < pairs; ++p)
    for (int c = 0; c < nr; ++c)
      dst[size_t(p) * nr + c] = pair_word(static_cast<int16_t>(v[size_t(2 * p) * nr + c]),
                                          static_cast<int16_t>(v[size_t(2 * p + 1) * nr + c]));
}

// Rows [r0, r1) x columns [c0, c1) (c0 a multiple of nr) of C = A (*) B over the K steps, from B
// packed by pack_b (bpack); C zeroed here first.
template <class ASrc, class Out>
void task(const ASrc& A, const uint32_t* bpack, Out* C, int64_t ldc, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
          int64_t K, int64_t N, const IntTable& t, Work& w) {
  for (int64_t r = r0; r < r1; ++r) std::fill(C + r * ldc + c0, C + r * ldc + c1, Out(0));
  const int nr = panel_width();
  const KernelFn kernel = select_kernel(nr);
  const int64_t panels = (N + nr - 1) / nr;
  w.raw.resize(size_t(kMR) * kExactBlock);
  w.apack.resize(size_t(kExactRows) * (kExactBlock / 2));
  w.vals.resize(size_t(kExactBlock) + 2);
  w.tile.resize(size_t(kMR) * nr);
  int32_t* const vals = w.vals.data();
  int32_t* const tile = w.tile.data();
  for (int64_t k0 = 0, kb = 0; k0 < K; k0 += kExactBlock, ++kb) {
    const int kc = static_cast<int>(std::min<int64_t>(kExactBlock, K - k0)), pairs = (kc + 1) / 2;
    for (int64_t i0 = r0; i0 < r1; i0 += kExactRows) {
      const int mc = static_cast<int>(std::min<int64_t>(kExactRows, r1 - i0)), mpan = (mc + kMR - 1) / kMR;
      // A: row panels of kMR rows, each row its pair words in order, packed as floats (in L1) and
      // converted at once; the rows past mc are 0 (no product).
      for (int ip = 0; ip < mpan; ++ip) {
        const int rows = std::min(kMR, mc - ip * kMR);
        A.pack(i0 + ip * kMR, rows, k0, kc, w.raw.data(), kExactBlock);
        uint32_t* ap = w.apack.data() + size_t(ip) * pairs * kMR;
        for (int r = 0; r < kMR; ++r) {
          uint32_t* words = ap + size_t(r) * pairs;
          if (r < rows) {
            values_of(w.raw.data() + size_t(r) * kExactBlock, kc, t.bits, t.exact == 2, vals);
            vals[kc] = 0;  // an odd last step pairs with 0
            for (int p = 0; p < pairs; ++p)
              words[p] = pair_word(static_cast<int16_t>(vals[2 * p]), static_cast<int16_t>(vals[2 * p + 1]));
          } else {
            std::fill(words, words + pairs, 0u);
          }
        }
      }
      for (int64_t jp = c0 / nr; jp * nr < c1; ++jp) {
        const int nc = static_cast<int>(std::min<int64_t>(nr, c1 - jp * nr));
        const uint32_t* bp = bpack + size_t(kb * panels + jp) * (kExactBlock / 2) * nr;
        for (int ip = 0; ip < mpan; ++ip) {
          kernel(pairs, w.apack.data() + size_t(ip) * pairs * kMR, bp, tile);
          const int rows = std::min(kMR, mc - ip * kMR);
          for (int r = 0; r < rows; ++r) {
            Out* crow = C + (i0 + ip * kMR + r) * ldc + jp * nr;
            const int32_t* trow = tile + r * nr;
            for (int c = 0; c < nc; ++c) crow[c] += static_cast<Out>(trow[c]);
          }
        }
      }
    }
  }
}

}  // namespace int_exact
}  // namespace approxsim

#endif  // APPROXSIM_CPU_INT_EXACT_H_
