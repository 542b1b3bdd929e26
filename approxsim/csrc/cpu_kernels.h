// cpu_kernels.h: the prepared table, the packed-panel formats and the micro-kernels.
//
// A GEMM is cut into micro-tiles of MR rows x NR columns over KC steps of the
// contraction. Operands are packed per micro-panel:
//   A (MR rows):    aoff[r*as + k] = i << aoff_shift (the table row of the operand),
//                   asc[r*as + k]  = sign|exponent bits of the operand as a float
//                                    (+-2^E, or +-0 for a zero/subnormal operand).
//   B (NR columns): bidx[k*NR + c] = j (int32, gather kernels) or 16-bit j in the
//                   permuted word order of the permute kernels (+ a mask of bit 6),
//                   bsc[k*NR + c]  = sign|exponent bits of the operand as a float.
// The "float domain" product is (T[i][j] * bsc) * asc: equal to DESIGN.md section 1
// whenever no intermediate or result leaves the normal range and no operand is
// Inf/NaN, which the driver checks per micro-panel pair (see Stats) before using
// a fast kernel; other tiles take the exact scalar path of approx_product.h.
// For the exact (fp32) product the panels hold the raw operands in asc/bsc.
#ifndef APPROXSIM_CPU_KERNELS_H_
#define APPROXSIM_CPU_KERNELS_H_

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "approx_product.h"
#include "cpu_simd.h"
#include "cpu_table.h"

namespace approxsim {

// Exponent range (unbiased) of the normal operands of a panel, and whether it holds an Inf or
// NaN: approx_product.h's approxsim_range. Zero and subnormal operands do not count.
struct Stats : approxsim_range {
  Stats() : approxsim_range(approxsim_range_empty()) {}
};

inline uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Whether the float-domain product is exact for every pair of a panel pair (approx_product.h).
inline bool float_domain_exact(const Table& t, const Stats& a, const Stats& b) {
  return approxsim_float_domain_exact(t.emin, t.emax, a, b);  // an all-zero table has emin > emax
}

// How B panels are packed for a table kernel.
enum BFormat {
  kGather32 = 0,   // bidx: int32 j; bsc: scales
  kPermute16 = 1,  // bidx: 16-bit j in permute_pos order, bmask: bit 6 of j per word (uint32 per k); bsc
  kBytes8 = 2,     // bidx: 8-bit j in byte_pos order; bext: exponent/sign words to add to the bf16 entry
                   // (word_pos order); bmask: uint64 per k of the nonzero normal operands (word_pos order)
};

// Whether the fused multiply-adds of the exact kernels give the IEEE products' sums.
inline bool fma_safe(const Stats& a, const Stats& b) { return approxsim_fma_exact(a, b); }

// The tile shape and kernels of one SIMD level.
struct KernelSet {
  int mr, nr;
  BFormat bformat;
  int aoff_shift;  // aoff = i << aoff_shift
  // Table kernels: tile[r*nr + c] = sum_k product, for full MR x NR panels; `as` is the A row stride.
  void (*table)(int kc, int as, const int32_t* aoff, const float* asc, const void* bidx, const void* bext,
                const void* bmask, const float* bsc, const Table& t, float* tile);
  // Exact kernel: tile[r*nr + c] = sum_k a*b.
  void (*exact)(int kc, int as, const float* a, const float* b, float* tile);
};

KernelSet select_kernels(const Table& t);
// Whether the lookups of this table run as AVX-512 VBMI byte permutes in registers (no gather):
// then a lookup costs about what an expanded-operand load does, and beats the linear-sum kernels.
bool byte_permute_lookups(const Table& t);

// ---------------------------------------------------------------------------------
// Lookup-free kernels, MR = 4 rows by NR = 16 columns at every SIMD level (the AVX2 code on AVX2 and
// AVX-512 CPUs, scalar code on the others). Both compute each product in the float domain, as the
// table kernels do, and need the same range check (float_domain_exact) per panel pair.

constexpr int kFreeMR = 4, kFreeNR = 16;

// Linear-sum tables (Table::lin): A panels hold au = u[i] and asc = scale(a), B panels bv = v[j] and
// bsc = scale(b); tile[r*16 + c] = sum_k t(au + bv) * (asc * bsc), t(s) = fma(beta_p, s, alpha_p).
using LinearKernel = void (*)(int kc, int as, const float* au, const float* asc, const float* bv, const float* bsc,
                              const LinearSum& lin, float* tile);
LinearKernel select_linear_kernel(const Table& t);
// n operands of a linear-sum panel -> their classes in place (cls: Table::lin.u for A, lin.v for B,
// indexed by the table row/column) and sc = scale_of; updates the panel's stats. Where the classes are
// a shift of the index (cls_shift >= 0: cls[i] = i >> cls_shift, Table::lin.ushift / vshift: Mitchell,
// MBM) the class comes from the operand's bits, with no lookup (Zen gathers are slow: LeNet-5's first
// filter gradient spent a fifth of its time in them). Vectorised where the CPU allows.
void convert_linear(float* raw, int n, int m, const float* cls, int cls_shift, float* sc, Stats& s);

// Expanded operand (M <= kMaxExpandedBits): a B panel of kc x NR operands becomes
// bx[(k*2^P + i)*NR + c] = T[i << (M - P)][j(b[k][c])] * scale(b[k][c]) for every panel row i, with
// P = Table::prow: one panel row per group of 2^(M - P) equal table rows (P = M but for tables like
// MBM's, whose rows are equal in pairs: half the panel to build and to sweep). A panels hold each
// operand in two bytes, interleaved (element (r, k) at k*4 + r): its top 16 bits, that is sign,
// exponent and the 7 leading fraction bits, of which the leading P are its panel row i (compact_a);
// the kernel, given P for its m, adds sum_k bx[(k*2^P + i)*NR + c] * scale(a) to acc[r*NR + c].
// Panels are kFreeNR = 16 columns wide, or kNarrowNR = 8 for outputs of at most 8 columns (LeNet's
// 6 filters), which would leave most of a 16-wide panel's products and build as padding, or, with
// bfloat16 entries, kWideNR = 32 (a panel row is one cache line: two 16-lane FMAs on AVX-512, four
// 8-lane ones on AVX2).
// Contraction steps of one expanded panel: about 256 KiB (L2) at P = 7 and 16 columns.
constexpr int kExpandedMaxKc = 128;
constexpr int kNarrowNR = 8, kWideNR = 32;
inline int expanded_kc(int m) { return m >= 5 ? (4096 >> m) : kExpandedMaxKc; }
inline int expanded_kc(const Table& t) { return expanded_kc(t.prow); }  // by the panel's rows
using ExpandedKernel = void (*)(int kc, const uint16_t* a, int m, const float* bx, float* acc);
inline uint16_t compact_a(uint32_t u) { return static_cast<uint16_t>(u >> 16); }
// The offset of the panel row of A operand a in a contraction step's slab of NR-wide rows.
inline int compact_row(uint16_t a, int m, int nr) { return ((a & 0x7F) >> (7 - m)) * nr; }
inline float compact_scale(uint16_t a) { return from_bits(uint32_t(a & 0xFF80u) << 16); }
// The kFreeMR rows of an A panel (row r at raw + r * stride, n operands each) -> dst[k * kFreeMR + r] =
// compact_a(operand), and the rows' stats. Vectorised where the CPU allows.
void compact_a4(const float* raw, int64_t stride, int n, uint16_t* dst, Stats& s);
using ExpandBuild = void (*)(const float* raw, int kc, const Table& t, float* bx, Stats& s);  // raw: kc x NR
// The kernel and the panel build for float32 panels nr (kFreeNR or kNarrowNR) columns wide; none for
// kWideNR (its panels are bfloat16 only).
ExpandedKernel select_expanded_kernel(int nr);
ExpandBuild select_expand_build(int nr);
// The same with bfloat16 panel entries (the upper halves), for tables whose entries are all
// bfloat16 (Table::bf16_exact): a scaled entry T * 2^E is then bfloat16 too, exactly (the panel's
// range check keeps it normal), and the panel is half the size. Null where there is no such kernel.
using ExpandedBf16Kernel = void (*)(int kc, const uint16_t* a, int m, const uint16_t* bx, float* acc);
using ExpandBuildBf16 = void (*)(const float* raw, int kc, const Table& t, uint16_t* bx, Stats& s);
ExpandedBf16Kernel select_expanded_bf16_kernel(int nr);
// (By integer adds on the words where the table has cols16.)
ExpandBuildBf16 select_expand_build_bf16(int nr, const Table& t);

// Adds one operand (bit pattern u) to the stats of its panel.
inline void account(uint32_t u, Stats& s) { approxsim_range_add(&s, u); }

// The float-domain scale of an operand: +-2^E, or +-0 for zero/subnormal.
inline float scale_of(uint32_t u) {
  return ((u >> 23) & 0xFFu) == 0 ? from_bits(u & 0x80000000u) : from_bits(u & 0xFF800000u);
}

// n A operands -> off[k] = i << aoff_shift (0 for zero/subnormal), sc[k] = scale_of; for the
// exact product (m == 0) sc = raw. Updates the panel's stats. Vectorised where the CPU allows.
void convert_a(const float* raw, int n, int m, int aoff_shift, int32_t* off, float* sc, Stats& s);

// One k-row of 64 B operands -> the kBytes8 format (idx: 64 bytes, ext: 64 words, mask).
void convert_b_bytes8(const float* raw, int m, uint8_t* idx, uint16_t* ext, uint64_t* mask, Stats& s);

// Word position of column c (0..31) in the kPermute16 index vector: unpacklo/hi_epi16(0, v)
// then yield columns 0..15 and 16..31 in order.
inline int permute_pos(int c) {
  const int half = c >> 4, cc = c & 15;
  return 8 * (cc >> 2) + 4 * half + (cc & 3);
}

// kBytes8 (64 columns): byte position of column c in the index vector, and its position among
// the 64 words W0 (0..31) = unpacklo_epi8(lo, hi), W1 (32..63) = unpackhi_epi8(lo, hi), so
// that unpacklo/hi_epi16(0, W0), unpacklo/hi_epi16(0, W1) yield columns 0..63 in order.
inline int byte_pos(int c) {
  const int f = c >> 4, l = (c & 15) >> 2, r = c & 3;
  return 16 * l + 4 * f + r;
}
inline int word_pos(int c) {
  const int f = c >> 4, l = (c & 15) >> 2, r = c & 3;
  return (f >= 2 ? 32 : 0) + 8 * l + 4 * (f & 1) + r;
}

}  // namespace approxsim

#endif  // APPROXSIM_CPU_KERNELS_H_
