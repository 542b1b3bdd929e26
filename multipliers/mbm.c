/*
 * The minimally biased multiplier (MBM).
 *
 * Mitchell's multiplier with two corrections: each truncated operand fraction
 * gets its lowest kept bit set (the midpoint of the truncated interval), and a
 * constant 2^-4 + 2^-6 is added to the fraction sum (halved when the sum
 * carries), which cancels Mitchell's mean error.  As in ApproxTrain's models,
 * the correction keeps only the M fraction bits, is dropped when adding it
 * would carry out of a carried sum, and the result keeps M fraction bits.
 *
 * References: M. S. Saadat, H. Zhou, C.-S. Lee, H. Sohn, "Minimally Biased
 * Multipliers for Approximate Integer and Floating-Point Multiplication", IEEE
 * TCAD 37(11), 2018.  J. Gong et al., "ApproxTrain", IEEE TCAD 2023.
 */
#include "model_util.h"

float mbm(float a, float b) {
  const int m = APPROXSIM_MANTISSA_BITS;
  const uint32_t keep = ((1u << m) - 1u) << (23 - m);
  const uint32_t lsb = 1u << (23 - m);
  uint32_t s = (model_trunc_frac(a, m) | lsb) + (model_trunc_frac(b, m) | lsb);
  int carry = s >= MODEL_ONE;
  uint32_t correction = ((uint32_t)(MODEL_ONE / 16 + MODEL_ONE / 64) >> carry) & keep;
  uint32_t f = (s & MODEL_FRAC_MASK) + correction;
  double sig;
  if (carry && f >= MODEL_ONE) {
    sig = 2.0 * ((double)s / MODEL_ONE); /* the correction would overflow: 2S */
  } else {
    sig = (1.0 + (double)f / MODEL_ONE) * (carry ? 2.0 : 1.0);
  }
  return approxsim_finish(a, b, model_trunc_float((float)sig, m));
}
