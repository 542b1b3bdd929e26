/*
 * Full-precision Mitchell multiplier (mitchell23): the operands' whole 23-bit
 * fractions x, y, no truncation.  log2(1 + x) ~ x, so the significand of the
 * product is 1 + x + y, or 2(x + y) when x + y >= 1.  The relative error lies
 * in [-1/9, 0] (worst -11.11% at x = y = 1/2) with mean -3.85% over uniform
 * fractions.  Special values, overflow and underflow as in approxsim's
 * DESIGN.md section 1 (see full_util.h).
 *
 * Reference: J. N. Mitchell, "Computer Multiplication and Division Using Binary
 * Logarithms", IRE Trans. Electronic Computers, EC-11(4):512-517, 1962.
 */
#include "full_util.h"

FULL_MODEL float mitchell23(float a, float b) {
  const uint32_t ua = full_bits(a), ub = full_bits(b);
  const uint32_t s = (ua & FULL_FRAC) + (ub & FULL_FRAC);
  const int carry = s >= FULL_ONE; /* 2(x + y) = 2 * (1 + (x + y - 1)) */
  return full_result(ua, ub, full_exp_sum(ua, ub) + carry, s & FULL_FRAC);
}
