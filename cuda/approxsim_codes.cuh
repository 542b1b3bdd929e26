/*
 * approxsim_codes.cuh: the per-product arithmetic of the CUDA kernels, written as
 * __host__ __device__ functions over approx_product.h so that the very same code
 * is compiled for the GPU (NVRTC or nvcc) and, in the tests, for the CPU (g++),
 * where it is checked against the NumPy reference bit for bit.
 *
 * Fast path.  When a tile passes approxsim_float_domain_exact (approx_product.h:
 * the exponent ranges of its operands keep every intermediate normal), the product is
 *     T[i][j] * (scale(a) * scale(b)),   scale(x) = sign(x) * 2^E(x) (or +-0),
 * which is exact in float32 (powers of two times a normal float, no rounding), so
 * fmaf(T[i][j], scale(a) * scale(b), acc) adds exactly the specified product.
 * Per product: one add for the table address, one load, FMUL, FFMA.
 *
 * Exact path ("packed codes"), for tiles with Inf, NaN or extreme exponents:
 * the header's special cases, then each operand encoded into a word whose
 * integer SUM with the other operand's word yields what one lookup needs:
 *
 *   u32 code (M <= 10):  bit 31 sign | bits 21..30 f (10 bits) | bits 0..19 index
 *   uint2 code (M = 11): hi = sign | f ;  lo = index (22 bits)
 *
 *   index: i << M for the first operand, j for the second, so that the sum is
 *          the table index (i << M) | j (disjoint bits, no carry);
 *   f:     0 for zero/subnormal operands, else biased exponent + 254, so that
 *          fa + fb <= 1016 fits 10 bits and the sign bits add up to their XOR;
 *   sum:   v = T[idx] * 2^(fa + fb - 762 + 127 - 127): approxsim_scale_entry
 *          of the header with exp_sum = fa + fb - 762.  A zero operand makes
 *          exp_sum <= -254, so the product flushes to the signed zero of the
 *          specification (this needs every table entry to be a positive normal
 *          float: the host checks it and otherwise uses the generic path).
 *
 * Operands that are Inf or NaN are never encoded: the exact path applies the
 * header's special cases to the raw floats first.  The generic path (any finite table,
 * including zero, negative or subnormal entries) calls approxsim_mul_split.
 */
#ifndef APPROXSIM_CODES_CUH_
#define APPROXSIM_CODES_CUH_

#include "approx_product.h"

#define APPROXSIM_F_SHIFT 21
#define APPROXSIM_F_BIAS 254 /* added to a normal operand's biased exponent */
#define APPROXSIM_F_OFFSET 762 /* 2 * APPROXSIM_F_BIAS + 254 */

typedef long long approxsim_i64;

/* Member functions (APPROXSIM_HD is for free functions) and read-only loads, device or host. */
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define APPROXSIM_HDM __host__ __device__ __forceinline__
#else
#define APPROXSIM_HDM inline
#endif
#if defined(__CUDA_ARCH__)
#define APPROXSIM_LDG(p) __ldg(p)
#else
#define APPROXSIM_LDG(p) (*(p))
#endif

typedef struct {
  approxsim_u32 lo; /* index */
  approxsim_u32 hi; /* sign | f */
} approxsim_code2;

/* f field of an operand (0: zero or subnormal). Inf/NaN give 0 too: never used. */
APPROXSIM_HD approxsim_u32 approxsim_code_f(approxsim_u32 u) {
  approxsim_u32 e = (u >> 23) & 0xFFu;
  return (e == 0u || e == 0xFFu) ? 0u : e + APPROXSIM_F_BIAS;
}

/* Index bits of an operand: its top m mantissa bits, shifted by `shift` (m for the first operand). */
APPROXSIM_HD approxsim_u32 approxsim_code_index(approxsim_u32 u, int m, int shift) {
  approxsim_u32 e = (u >> 23) & 0xFFu;
  if (e == 0u || e == 0xFFu) return 0u;
  return ((u & APPROXSIM_FRAC_MASK) >> (23 - m)) << shift;
}

/* u32 code of an operand (M <= 10); shift = m for the first operand, 0 for the second. */
APPROXSIM_HD approxsim_u32 approxsim_encode32(float x, int m, int shift) {
  approxsim_u32 u = approxsim_f2u(x);
  return (u & APPROXSIM_SIGN_MASK) | (approxsim_code_f(u) << APPROXSIM_F_SHIFT) |
         approxsim_code_index(u, m, shift);
}

/* Two-word code of an operand (M = 11). */
APPROXSIM_HD approxsim_code2 approxsim_encode64(float x, int m, int shift) {
  approxsim_u32 u = approxsim_f2u(x);
  approxsim_code2 c;
  c.lo = approxsim_code_index(u, m, shift);
  c.hi = (u & APPROXSIM_SIGN_MASK) | approxsim_code_f(u);
  return c;
}

/* A table word (the bits of a positive normal float entry) as the header's split entry. */
APPROXSIM_HD approxsim_entry approxsim_word_entry(approxsim_u32 w) {
  approxsim_entry t;
  t.sign_frac = w & APPROXSIM_FRAC_MASK;
  t.exp = (approxsim_i32)(w >> 23) - 127;
  return t;
}

/* The product from a summed u32 code and its table word. */
APPROXSIM_HD float approxsim_packed_product(approxsim_u32 s, approxsim_u32 word) {
  approxsim_i32 exp_sum = (approxsim_i32)((s >> APPROXSIM_F_SHIFT) & 0x3FFu) - APPROXSIM_F_OFFSET;
  return approxsim_u2f(approxsim_scale_entry(s & APPROXSIM_SIGN_MASK, approxsim_word_entry(word), exp_sum));
}

/* The same for a summed two-word code. */
APPROXSIM_HD float approxsim_packed_product2(approxsim_u32 hi, approxsim_u32 word) {
  approxsim_i32 exp_sum = (approxsim_i32)(hi & 0x3FFu) - APPROXSIM_F_OFFSET;
  return approxsim_u2f(approxsim_scale_entry(hi & APPROXSIM_SIGN_MASK, approxsim_word_entry(word), exp_sum));
}

/* ---- fast path ---- */

/* Byte offset of x's table row (shift = m + log2(entry bytes)) or column (shift = log2(entry bytes)). */
APPROXSIM_HD approxsim_u32 approxsim_fast_offset(float x, int m, int shift) {
  return ((approxsim_f2u(x) & APPROXSIM_FRAC_MASK) >> (23 - m)) << shift;
}

/* sign(x) * 2^E(x) for normal x, +-0 for zero or subnormal x (exact). */
APPROXSIM_HD float approxsim_fast_scale(float x) { return approxsim_u2f(approxsim_f2u(x) & 0xFF800000u); }

/* ---- exact path ---- */

/* Index mask of a summed u32 code. */
APPROXSIM_HD approxsim_u32 approxsim_index_mask(int m) { return (1u << (2 * m)) - 1u; }

/*
 * The exact path for packed tables: special cases by the header (step 1 and 2),
 * then the packed product.  `words` is the table as float bits (u32) or, when
 * `words16` is not null, as the top halves of the float bits.
 */
APPROXSIM_HD float approxsim_exact_packed(float a, float b, const approxsim_u32* words,
                                          const unsigned short* words16, int m) {
  approxsim_u32 ua = approxsim_f2u(a), ub = approxsim_f2u(b);
  approxsim_u32 out;
  if (approxsim_special(ua, ub, (ua >> 23) & 0xFFu, (ub >> 23) & 0xFFu, &out)) return approxsim_u2f(out);
  if (m <= 10) {
    approxsim_u32 s = approxsim_encode32(a, m, m) + approxsim_encode32(b, m, 0);
    approxsim_u32 idx = s & approxsim_index_mask(m);
    approxsim_u32 w = words16 ? ((approxsim_u32)words16[idx] << 16) : words[idx];
    return approxsim_packed_product(s, w);
  }
  approxsim_code2 ca = approxsim_encode64(a, m, m), cb = approxsim_encode64(b, m, 0);
  return approxsim_packed_product2(ca.hi + cb.hi, words[ca.lo + cb.lo]);
}

#endif /* APPROXSIM_CODES_CUH_ */
