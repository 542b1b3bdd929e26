// cpu_int.h: the CPU kernels of integer multipliers (DESIGN.md section 1b): exact integer sums of
// table products, for matmul and the three convolutions (cpu_int.cpp).
//
// Operands arrive encoded as floats e = p + 1, p the code's n-bit pattern (exact in float32 for
// n <= 16), so that the operand sources and packers of the float kernels (cpu_operands.h) serve
// here too; e = 0 is "no product" (what the packers write for padding and for input-gradient
// positions no output reaches). The kernels look products up in the padded table
// t[e_a * (2^n + 1) + e_b], whose row and column 0 are zero. Padding that the semantics counts as
// code 0 (forward and filter-gradient padding) is added by the caller (approxsim.backends.cpu).
//
// Sums are exact: int32 partial sums over at most INT32_MAX / max|T| products, carried into int64
// where the output is int64. Methods: "expanded" (bits <= 8, from s1 / 8 rows): for each B panel
// the rows Wx[e][k][c] = t[e][e_b[k][c]] for every encoded A value e, so that a row of A selects a
// contiguous row of Wx and the micro-kernel is vector integer adds, no multiply, no gather (only the
// rows that a block's codes read, by groups of 8, where the panels have more rows than the block;
// 16-bit panel entries where the table fits them, built by transposes of a 16-bit transposed table; panels
// 8 columns wide for outputs of at most 8, 32 with 16-bit entries on AVX-512 for more than 16, else
// 16; tiles that split only the columns share one packing of A); "exact" for tables of exact
// products of codes of at most 8 bits (cpu_int_exact.h: the products computed, 16-bit pairs
// multiplied and added into int32 lanes); "lookup" otherwise: one table lookup per product.
#ifndef APPROXSIM_CPU_INT_H_
#define APPROXSIM_CPU_INT_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu_aligned.h"
#include "cpu_operands.h"

namespace approxsim {

struct IntTable {
  int bits = 0;
  int64_t s1 = 0;          // 2^n + 1: rows and columns of the padded tables
  LineVector<int32_t> t;  // t[e_a * s1 + e_b]; row and column 0 are 0 (+ padding for vector loads)
  LineVector<int32_t> tt; // the transpose, tt[e_b * s1 + e_a]
  int64_t min_entry = 0, max_entry = 0;  // the entries' range (0 included: the padding row and column)
  LineVector<uint16_t> tt16;  // tt as 16-bit patterns where every entry fits 16 bits (else empty)
  int exact = 0;  // 1: T[p][q] = p * q (unsigned codes); 2: the same of the patterns as two's complement; 0: neither
  int64_t max_abs() const { return std::max(-min_entry, max_entry); }
  bool fits_uint16() const { return min_entry >= 0 && max_entry <= UINT16_MAX; }
  bool fits_int16() const { return min_entry >= INT16_MIN && max_entry <= INT16_MAX; }
};

// The padded tables of a 2^n x 2^n int32 table (row-major by patterns, first operand outer).
IntTable make_int_table(const int32_t* table, int bits);

// dst[q] = the encoding of codes[q], a code of the n-bit format (signed: its two's complement
// pattern), for q < count: pattern + 1 as a float, on up to `threads` threads. False where a code
// is outside the format's range (dst is then unspecified). T: any integer type up to 64 bits.
template <class T>
bool encode_codes(const T* codes, int64_t count, int bits, bool is_signed, float* dst, int threads);

// Whether every one of the count encoded codes is an integer in 0 .. 2^n (the kernels' own guard
// on their float operands), on up to `threads` threads.
bool encoded_in_table(const float* codes, int64_t count, const IntTable& t, int threads);

// As matmul_batched / conv2d_* of cpu_gemm.h, on encoded operands, into int32 or int64 results.
template <class Out>
void int_matmul_batched(const float* a, const float* b, Out* c, const int64_t* a_index, const int64_t* b_index,
                        int64_t batch, int64_t a_size, int64_t b_size, int64_t m, int64_t n, int64_t k, bool ta,
                        bool tb, const IntTable& t, int threads);
template <class Out>
void int_conv2d_forward(const float* x, const float* w, Out* y, const Geom& g, const IntTable& t, int threads);
template <class Out>
void int_conv2d_input_grad(const float* dy, const float* w, Out* dx, const Geom& g, const IntTable& t, int threads);
template <class Out>
void int_conv2d_filter_grad(const float* x, const float* dy, Out* dw, const Geom& g, const IntTable& t, int threads);

// The method the driver takes for a table and a number of rows ("exact", "expanded" or "lookup").
const char* int_method_for(const IntTable& t, int64_t rows);

}  // namespace approxsim

#endif  // APPROXSIM_CPU_INT_H_
