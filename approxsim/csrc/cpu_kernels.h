// cpu_kernels.h: the prepared table, the packed-panel formats and the micro-kernels.
//
// A GEMM is cut into micro-tiles of MR rows x NR columns over KC steps of the
// contraction. Operands are packed per micro-panel:
//   A (MR rows):    aoff[k*MR + r] = i << M (the table row of the operand),
//                   asc[k*MR + r]  = sign|exponent bits of the operand as a float
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
#include <vector>

#include "approx_product.h"

namespace approxsim {

enum SimdLevel { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };

int detected_simd_level();  // what the CPU supports
int simd_level();           // what is used (detected, or lower when forced)
void set_simd_level(int level);  // forces a level <= detected (for tests); -1 restores
const char* simd_name(int level);

// A multiplier table in every form the kernels use.
struct Table {
  int m = 0;                        // mantissa bits; 0 for the exact fp32 product
  std::vector<float> f32;           // 2^2M entries (+ padding)
  std::vector<uint16_t> bf16;       // upper halves, when bf16_exact (+ padding)
  bool bf16_exact = false;          // every entry equals its upper 16 bits
  std::vector<approxsim_entry> split;  // for the exact scalar path
  int emin = 0, emax = 0;           // unbiased exponent range of the nonzero entries
  bool any_nonzero = false;
};

Table make_table(const float* t, int m);  // m == 0: exact product (t unused)

// Exponent range (unbiased) of the normal operands of a panel, and whether it
// holds an Inf or NaN. Zero and subnormal operands give exact zeros and do not count.
struct Stats {
  int emin = 1000, emax = -1000;
  bool special = false;
};

// Whether the float-domain product is exact for every pair of a panel pair.
inline bool float_domain_exact(const Table& t, const Stats& a, const Stats& b) {
  if (a.special || b.special) return false;
  if (!t.any_nonzero || a.emax < a.emin || b.emax < b.emin) return true;  // all products are zeros
  return t.emax + b.emax <= 127 && t.emin + b.emin >= -126 && t.emax + a.emax + b.emax <= 127 &&
         t.emin + a.emin + b.emin >= -126;
}

// The tile shape and kernels of one SIMD level.
struct KernelSet {
  int mr, nr;
  bool permute;  // B indices packed as 16-bit words for the permute kernel (bf16 table, M <= 7)
  // Table kernels: tile[r*nr + c] = sum_k product, for full MR x NR panels.
  void (*table)(int kc, const int32_t* aoff, const float* asc, const void* bidx, const uint32_t* bmask,
                const float* bsc, const Table& t, float* tile);
  // Exact kernel: tile[r*nr + c] = sum_k a*b.
  void (*exact)(int kc, const float* a, const float* b, float* tile);
};

KernelSet select_kernels(const Table& t);

}  // namespace approxsim

#endif  // APPROXSIM_CPU_KERNELS_H_
