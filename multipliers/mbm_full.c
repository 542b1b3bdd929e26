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
  const uint32_t ua = full_bits(a), ub = full_bits(b);
  const uint32_t s = (ua & FULL_FRAC) + (ub & FULL_FRAC);
  const int carry = s >= FULL_ONE;
  const uint32_t f = (s & FULL_FRAC) + (carry ? MBM_CORRECTION / 2u : MBM_CORRECTION);
  const int over = f >= FULL_ONE;
  /* carry: 2(1 + F), or 2S = 2(1 + (S - 1)) when the correction would overflow;
     no carry: 1 + F, halved (truncating) when it reaches 2 */
  const uint32_t frac = carry ? (over ? (s & FULL_FRAC) : f) : (over ? ((FULL_ONE + f) >> 1) : f);
  return full_result(ua, ub, full_exp_sum(ua, ub) + (carry | over), frac & FULL_FRAC);
}
