// cpu_table.h: a multiplier table in every form the CPU kernels use.
#ifndef APPROXSIM_CPU_TABLE_H_
#define APPROXSIM_CPU_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "approx_product.h"
#include "cpu_aligned.h"

namespace approxsim {

// A float buffer on 2 MiB boundaries, in transparent huge pages where the OS allows: the
// gathers of a large table (M = 11: 16 MiB) would otherwise miss the TLB at every lookup.
class HugeFloats {
 public:
  void assign(const float* src, size_t n, size_t pad);
  const float* data() const { return p_.get(); }

 private:
  struct Free {
    void operator()(float* p) const;
  };
  std::unique_ptr<float, Free> p_;
};

// A table of the form T[i][j] = alpha_p + beta_p * (u[i] + v[j]) (approxsim.structure, verified there
// entry by entry with the kernels' own float arithmetic): piece p is the last with s >= theta_p.
struct LinearSum {
  static constexpr int kMaxPieces = 4;
  bool valid = false;
  int pieces = 0;
  float theta[kMaxPieces] = {0, 0, 0, 0};  // theta[0] unused (piece 0 starts at 0)
  float alpha[kMaxPieces] = {0, 0, 0, 0}, beta[kMaxPieces] = {0, 0, 0, 0};
  std::vector<float> u, v;  // the class of each row index i and column index j, as floats
  int ushift = -1, vshift = -1;  // u[i] = i >> ushift for every i (-1: no such shift); v likewise
};

// A multiplier table in every form the kernels use.
struct Table {
  int m = 0;                        // mantissa bits; 0 for the exact fp32 product
  HugeFloats f32;                   // 2^2M entries (+ padding)
  LineVector<uint16_t> bf16;        // upper halves, when bf16_exact (+ padding)
  bool bf16_exact = false;          // every entry equals its upper 16 bits
  LineVector<uint8_t> planes;       // bf16 entries as byte planes: row i at 256*i, low bytes then high
                                    // bytes of T[i][0..127] (M <= 7, bf16_exact)
  bool all_normal = false;          // every entry is a nonzero normal number
  std::vector<approxsim_entry> split;  // for the exact scalar path
  int emin = 0, emax = 0;           // unbiased exponent range of the nonzero entries
  bool any_nonzero = false;
  LinearSum lin;                    // the structure, when the table has it
  // Panel row bits of the expanded method: rows of T equal in aligned groups of 2^(m - prow) (MBM's
  // pairs: prow = m - 1) share one panel row, so a panel has 2^prow rows and an A operand's row is its
  // top prow mantissa bits (the kernels take prow for m).
  int prow = 0;
  HugeFloats cols;                  // the transpose, one row per group: column j at j << prow, entry c
                                    // T[c << (m - prow)][j] (M <= kMaxExpandedBits: expanded panels read it)
  LineVector<uint16_t> cols16;      // its bfloat16 upper halves, when all_normal and bf16_exact and
                                    // prow >= 4

  // The table of the swapped operands, T'[j][i] = T[i][j] (built on first use; this
  // table itself for the exact product).
  const Table& transposed() const;

  struct Transposed;
  std::shared_ptr<Transposed> tr;
};

Table make_table(const float* t, int m);  // m == 0: exact product (t unused)

// Records a linear-sum structure (u, v: 2^m classes each; 1..4 pieces; theta[0] ignored).
void set_linear_sum(Table& t, const float* u, const float* v, int pieces, const float* theta, const float* alpha,
                    const float* beta);

constexpr int kMaxExpandedBits = 7;  // tables up to this M have the transposed form for expanded panels

}  // namespace approxsim

#endif  // APPROXSIM_CPU_TABLE_H_
