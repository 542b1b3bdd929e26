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
  uint32_t ua = full_bits(a), ub = full_bits(b), special;
  uint32_t s;
  int e;
  if (full_special(ua, ub, &special)) return full_float(special);
  s = (ua & FULL_FRAC) + (ub & FULL_FRAC);
  e = full_exp_sum(ua, ub);
  if (s >= FULL_ONE) { /* 2(x + y) = 2 * (1 + (x + y - 1)) */
    s -= FULL_ONE;
    e += 1;
  }
  return full_pack((ua ^ ub) & FULL_SIGN, e, s);
}
