/*
 * Truncating multiplier of M-bit mantissas (fp32_trunc12 .. fp32_trunc23).
 *
 * Both operands' fractions are truncated to their top M bits, the significands
 * are multiplied exactly (a 48-bit integer product), and the product's fraction
 * is truncated to M bits: an M-bit multiplier that rounds toward zero.  For
 * M <= 11 this equals truncating, multiplying in float32 and truncating (the
 * bf16 recipe at M = 7); at M = 23 it is the float32 product rounded toward
 * zero.  Special values, overflow and underflow as in approxsim's DESIGN.md
 * section 1 (see full_util.h).
 *
 * Reference: IEEE Std 754-2019 (roundTowardZero); D. Kalamkar et al., "A Study
 * of BFLOAT16 for Deep Learning Training", arXiv:1905.12322, 2019.
 */
#include "full_util.h"

#ifndef APPROXSIM_MANTISSA_BITS
#define APPROXSIM_MANTISSA_BITS 23
#endif

FULL_MODEL float fp32_trunc(float a, float b) {
  const uint32_t keep = FULL_FRAC & ~((1u << (23 - APPROXSIM_MANTISSA_BITS)) - 1u);
  const uint32_t ua = full_bits(a), ub = full_bits(b);
  const uint64_t p = (uint64_t)(FULL_ONE | (ua & keep)) * (uint64_t)(FULL_ONE | (ub & keep)); /* [2^46, 2^48) */
  const int carry = p >= ((uint64_t)1 << 47);
  const uint32_t frac = (uint32_t)(carry ? p >> 24 : p >> 23);
  return full_result(ua, ub, full_exp_sum(ua, ub) + carry, frac & keep);
}
