/*
 * Mitchell's logarithmic multiplier.
 *
 * With x, y the operands' mantissa fractions truncated to M bits, log2(1 + x) is
 * approximated by x, so the product's significand is 1 + x + y, or 2(x + y)
 * when x + y >= 1 (the antilog of 1 + (x + y - 1)).  Its relative error lies in
 * [-1/9, 0] with mean -3.85% on a uniform grid.
 *
 * Reference: J. N. Mitchell, "Computer Multiplication and Division Using Binary
 * Logarithms", IRE Trans. Electronic Computers, EC-11(4), 1962.
 */
#include "model_util.h"

float mitchell(float a, float b) {
  const int m = APPROXSIM_MANTISSA_BITS;
  uint32_t s = model_trunc_frac(a, m) + model_trunc_frac(b, m);
  double sum = (double)s / MODEL_ONE;
  double sig = sum < 1.0 ? 1.0 + sum : 2.0 * sum;
  return approxsim_finish(a, b, sig);
}
