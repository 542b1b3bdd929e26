/*
 * L-Mul, the linear-complexity multiplication of Luo and Sun.
 *
 * The mantissa product (1 + x)(1 + y) = 1 + x + y + xy is approximated by
 * dropping the xy term and adding a constant offset 2^-l(m) instead:
 *     L-Mul(x, y) = (1 + x + y + 2^-l(m)) * 2^(Ex + Ey),
 *     l(m) = m if m <= 3, 3 if m == 4, 4 if m > 4,
 * with x, y the operands' fractions truncated to m = M bits.  The sum is formed
 * by one integer adder over the exponent and fraction fields, so a fraction sum
 * S = x + y + 2^-l(m) >= 1 carries into the exponent: the significand is then
 * 2^1 * (1 + (S - 1)) = 2S (as in Mitchell's multiplier), not 1 + S.  Since
 * l(m) <= m, every result has exactly M fraction bits and needs no rounding.
 *
 * Reference: H. Luo, W. Sun, "Addition is All You Need for Energy-efficient
 * Language Models", arXiv:2410.00907, 2024 (the L-Mul definition and l(m)).
 */
#include "model_util.h"

static int lmul_offset_exponent(int m) {
  if (m <= 3) return m;
  if (m == 4) return 3;
  return 4;
}

float lmul(float a, float b) {
  const int m = APPROXSIM_MANTISSA_BITS;
  uint32_t s = model_trunc_frac(a, m) + model_trunc_frac(b, m) + (MODEL_ONE >> lmul_offset_exponent(m));
  double sum = (double)s / MODEL_ONE;
  double sig = sum < 1.0 ? 1.0 + sum : 2.0 * sum; /* carry into the exponent field */
  return approxsim_finish(a, b, sig);
}
