/*
 * approx_product.h: the approximate product of DESIGN.md section 1, in one place.
 *
 * Included by the C++ CPU kernels (plain inline functions under g++) and by the
 * CUDA kernels (__host__ __device__ under nvcc or NVRTC).  NVRTC has no
 * <cstdint>, so the header defines its own fixed-width names and includes
 * nothing when compiled for the device.
 *
 * A multiplier with mantissa width M (1..11) has a table T of 2^M x 2^M float32
 * values.  For float32 a, b:
 *   1. a or b NaN -> NaN; +-Inf times zero/subnormal -> NaN;
 *      +-Inf times Inf or normal -> +-Inf (sign = sign(a) ^ sign(b)).
 *   2. a or b zero or subnormal -> +-0 (sign XOR).
 *   3. i, j = top M mantissa bits, Ea, Eb = unbiased exponents,
 *      v = T[i][j] * 2^(Ea + Eb) exactly; |v| >= 2^128 -> +-Inf,
 *      |v| < 2^-126 -> +-0, else v, with sign(a) ^ sign(b) ^ sign(T[i][j]).
 *
 * Step 3 never rounds: it reassembles the bits of T[i][j] with a new exponent.
 * The canonical NaN produced is 0x7FC00000 (positive quiet NaN).
 */
#ifndef APPROXSIM_APPROX_PRODUCT_H_
#define APPROXSIM_APPROX_PRODUCT_H_

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define APPROXSIM_HD __host__ __device__ __forceinline__
#else
#include <string.h>
#define APPROXSIM_HD static inline
#endif

typedef unsigned int approxsim_u32;
typedef int approxsim_i32;

#define APPROXSIM_SIGN_MASK 0x80000000u
#define APPROXSIM_FRAC_MASK 0x007FFFFFu
#define APPROXSIM_QNAN 0x7FC00000u
#define APPROXSIM_INF 0x7F800000u

APPROXSIM_HD approxsim_u32 approxsim_f2u(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  approxsim_u32 u;
  memcpy(&u, &f, sizeof u);
  return u;
#endif
}

APPROXSIM_HD float approxsim_u2f(approxsim_u32 u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
#endif
}

/*
 * A table entry split once into what step 3 needs: its sign bit, its fraction
 * field and its unbiased exponent (subnormal entries normalised; zero entries
 * get a very negative exponent so that every product of them flushes to 0).
 */
typedef struct {
  approxsim_u32 sign_frac; /* sign bit | 23-bit fraction of the normalised entry */
  approxsim_i32 exp;       /* unbiased exponent of the entry */
} approxsim_entry;

#define APPROXSIM_ZERO_ENTRY_EXP (-100000)

APPROXSIM_HD approxsim_entry approxsim_split_entry(float t) {
  approxsim_entry e;
  approxsim_u32 u = approxsim_f2u(t);
  approxsim_u32 sign = u & APPROXSIM_SIGN_MASK;
  approxsim_i32 biased = (approxsim_i32)((u >> 23) & 0xFFu);
  approxsim_u32 frac = u & APPROXSIM_FRAC_MASK;
  if (biased == 0) {
    if (frac == 0) {
      e.sign_frac = sign;
      e.exp = APPROXSIM_ZERO_ENTRY_EXP;
      return e;
    }
    /* subnormal entry: shift the leading one up to the implicit position */
    approxsim_i32 exp = -126;
    while ((frac & 0x00800000u) == 0) {
      frac <<= 1;
      exp -= 1;
    }
    e.sign_frac = sign | (frac & APPROXSIM_FRAC_MASK);
    e.exp = exp;
    return e;
  }
  e.sign_frac = sign | frac;
  e.exp = biased - 127;
  return e;
}

/*
 * Special cases (step 1 and 2) for operand bit patterns ua, ub whose biased
 * exponents are ea, eb.  Returns 1 and stores the result when one applies.
 */
APPROXSIM_HD int approxsim_special(approxsim_u32 ua, approxsim_u32 ub, approxsim_u32 ea,
                                   approxsim_u32 eb, approxsim_u32* out) {
  approxsim_u32 sign = (ua ^ ub) & APPROXSIM_SIGN_MASK;
  if (ea == 0xFFu || eb == 0xFFu) {
    int nan_a = ea == 0xFFu && (ua & APPROXSIM_FRAC_MASK) != 0;
    int nan_b = eb == 0xFFu && (ub & APPROXSIM_FRAC_MASK) != 0;
    if (nan_a || nan_b || ea == 0 || eb == 0) {
      *out = APPROXSIM_QNAN;
    } else {
      *out = sign | APPROXSIM_INF;
    }
    return 1;
  }
  if (ea == 0 || eb == 0) {
    *out = sign;
    return 1;
  }
  return 0;
}

/* Step 3: an entry scaled by 2^(sum of unbiased exponents), exactly. */
APPROXSIM_HD approxsim_u32 approxsim_scale_entry(approxsim_u32 sign, approxsim_entry t,
                                                 approxsim_i32 exp_sum) {
  approxsim_u32 s = sign ^ (t.sign_frac & APPROXSIM_SIGN_MASK);
  approxsim_i32 e = t.exp + exp_sum;
  if (e >= 128) return s | APPROXSIM_INF;
  if (e < -126) return s;
  return s | ((approxsim_u32)(e + 127) << 23) | (t.sign_frac & APPROXSIM_FRAC_MASK);
}

/* The approximate product of a and b with pre-split table entries of width m. */
APPROXSIM_HD float approxsim_mul_split(float a, float b, const approxsim_entry* table, int m) {
  approxsim_u32 ua = approxsim_f2u(a), ub = approxsim_f2u(b);
  approxsim_u32 ea = (ua >> 23) & 0xFFu, eb = (ub >> 23) & 0xFFu;
  approxsim_u32 out;
  if (approxsim_special(ua, ub, ea, eb, &out)) return approxsim_u2f(out);
  approxsim_u32 i = (ua & APPROXSIM_FRAC_MASK) >> (23 - m);
  approxsim_u32 j = (ub & APPROXSIM_FRAC_MASK) >> (23 - m);
  approxsim_entry t = table[(i << m) | j];
  out = approxsim_scale_entry((ua ^ ub) & APPROXSIM_SIGN_MASK, t,
                              (approxsim_i32)ea + (approxsim_i32)eb - 254);
  return approxsim_u2f(out);
}

/* The same from a plain float table (splits the entry on the fly). */
APPROXSIM_HD float approxsim_mul(float a, float b, const float* table, int m) {
  approxsim_u32 ua = approxsim_f2u(a), ub = approxsim_f2u(b);
  approxsim_u32 ea = (ua >> 23) & 0xFFu, eb = (ub >> 23) & 0xFFu;
  approxsim_u32 out;
  if (approxsim_special(ua, ub, ea, eb, &out)) return approxsim_u2f(out);
  approxsim_u32 i = (ua & APPROXSIM_FRAC_MASK) >> (23 - m);
  approxsim_u32 j = (ub & APPROXSIM_FRAC_MASK) >> (23 - m);
  approxsim_entry t = approxsim_split_entry(table[(i << m) | j]);
  out = approxsim_scale_entry((ua ^ ub) & APPROXSIM_SIGN_MASK, t,
                              (approxsim_i32)ea + (approxsim_i32)eb - 254);
  return approxsim_u2f(out);
}

/*
 * Fast-path exactness, shared by the CPU and CUDA kernels.
 *
 * The fast kernels compute a table product as floats: T[i][j] scaled by the operands'
 * scales s(x) = sign(x) * 2^E(x) (+-0 for zero/subnormal x).  The CPU forms (T * s(b)) * s(a),
 * the GPU T * (s(a) * s(b)).  Both are exact (powers of two, no rounding) and equal to step 3
 * of the specification when every intermediate and result is a normal float, which holds for
 * every pair of a block of A operands and a block of B operands when their exponent ranges
 * (normal operands only; zero and subnormal operands give exact signed zeros) satisfy the
 * predicate below.  Blocks holding Inf or NaN, or failing it, take the exact path.
 */
typedef struct {
  approxsim_i32 emin, emax; /* unbiased exponents of the normal operands (emin > emax: none) */
  approxsim_i32 special;    /* an Inf or NaN is present */
} approxsim_range;

#define APPROXSIM_RANGE_EMPTY_MIN 1000
#define APPROXSIM_RANGE_EMPTY_MAX (-1000)

APPROXSIM_HD approxsim_range approxsim_range_empty(void) {
  approxsim_range r;
  r.emin = APPROXSIM_RANGE_EMPTY_MIN;
  r.emax = APPROXSIM_RANGE_EMPTY_MAX;
  r.special = 0;
  return r;
}

/* Adds one operand (bit pattern u) to a range. */
APPROXSIM_HD void approxsim_range_add(approxsim_range* r, approxsim_u32 u) {
  approxsim_i32 e = (approxsim_i32)((u >> 23) & 0xFFu);
  if (e == 0xFF) {
    r->special = 1;
  } else if (e != 0) {
    e -= 127;
    if (e < r->emin) r->emin = e;
    if (e > r->emax) r->emax = e;
  }
}

/*
 * Whether the float-domain table product is exact for every pair of a block of A operands
 * (range a) and B operands (range b), for a table whose nonzero entries have exponents in
 * [t_emin, t_emax] (t_emin > t_emax: every entry is zero).
 */
APPROXSIM_HD int approxsim_float_domain_exact(approxsim_i32 t_emin, approxsim_i32 t_emax, approxsim_range a,
                                              approxsim_range b) {
  if (a.special || b.special) return 0;
  if (t_emin > t_emax || b.emin > b.emax) return 1; /* every scaled entry is +-0 */
  if (t_emax + b.emax > 127 || t_emin + b.emin < -126) return 0; /* T * s(b) stays normal (CPU) */
  if (a.emin > a.emax) return 1;
  if (a.emax + b.emax > 127 || a.emin + b.emin < -126) return 0; /* s(a) * s(b) stays normal (GPU) */
  return t_emax + a.emax + b.emax <= 127 && t_emin + a.emin + b.emin >= -126;
}

/*
 * Whether fused multiply-adds give the IEEE products' sums for the exact (fp32) product: no
 * Inf/NaN, and no product can overflow (an FMA could avoid an overflow the product has).
 */
APPROXSIM_HD int approxsim_fma_exact(approxsim_range a, approxsim_range b) {
  if (a.special || b.special) return 0;
  return a.emin > a.emax || b.emin > b.emax || a.emax + b.emax <= 125;
}

#endif /* APPROXSIM_APPROX_PRODUCT_H_ */
