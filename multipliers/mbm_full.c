/*
 * Full-precision minimally biased multiplier (mbm23).
 *
 * Saadat et al.'s MBM on the operands' whole 23-bit fractions x, y (no input
 * truncation, so no rounding bit is set): S = x + y; carry = S >= 1; the
 * fraction F = S (or S - 1 on carry) plus the bias correction 2^-4 + 2^-6,
 * halved on carry; significand 1 + F, doubled on carry.  As in ApproxTrain's
 * 32-bit MBM model, when the carried sum plus the correction would reach 2 the
 * correction is dropped (significand 2S, Mitchell's value).  Without carry,
 * 1 + F may reach 2; it is then renormalised, truncating the lowest bit.
 * Special values, overflow and underflow as in approxsim's DESIGN.md section 1
 * (see full_util.h).
 *
 * References: M. S. Saadat, H. Zhou, C.-S. Lee, H. Sohn, "Minimally Biased
 * Multipliers for Approximate Integer and Floating-Point Multiplication", IEEE
 * TCAD 37(11):2623-2635, 2018.  J. Gong et al., "ApproxTrain: Fast Simulation
 * of Approximate Multipliers for DNN Training and Inference", IEEE TCAD 2023.
 */
#include "full_util.h"

#define MBM_CORRECTION (FULL_ONE / 16u + FULL_ONE / 64u) /* 2^-4 + 2^-6 */

FULL_MODEL float mbm23(float a, float b) {
  uint32_t ua = full_bits(a), ub = full_bits(b), special;
  uint32_t s, f, frac;
  int e, carry;
  if (full_special(ua, ub, &special)) return full_float(special);
  s = (ua & FULL_FRAC) + (ub & FULL_FRAC);
  e = full_exp_sum(ua, ub);
  carry = s >= FULL_ONE;
  f = (s & FULL_FRAC) + (MBM_CORRECTION >> carry);
  if (carry) {
    /* 2(1 + F) with F < 1, or 2S = 2(1 + (S - 1)) when the correction would overflow */
    frac = f >= FULL_ONE ? (s & FULL_FRAC) : f;
    e += 1;
  } else if (f >= FULL_ONE) {
    frac = ((FULL_ONE + f) >> 1) & FULL_FRAC; /* 1 + F in [2, 2.08): halve, truncating */
    e += 1;
  } else {
    frac = f;
  }
  return full_pack((ua ^ ub) & FULL_SIGN, e, frac);
}
