/*
 * Truncation multiplier: the exact product of operands truncated to M fraction
 * bits, truncated in turn to M fraction bits (round toward zero, as bf16
 * hardware without rounding does).
 *
 * Both operands keep 1 + M significant bits, so their product has at most
 * 2M + 2 <= 24 bits and is exact in float32 (and in double); only the final
 * truncation loses precision.  At M = 7 this is bfloat16 multiplication (the
 * same table as the "bf16" built-in); at M = 10 it has the fraction width of
 * IEEE binary16 and of NVIDIA's TensorFloat-32.
 *
 * References: IEEE Std 754-2019 (binary16: 10 fraction bits).  D. Kalamkar et
 * al., "A Study of BFLOAT16 for Deep Learning Training", arXiv:1905.12322, 2019.
 */
#include "model_util.h"

float trunc_mul(float a, float b) {
  const int m = APPROXSIM_MANTISSA_BITS;
  double x = 1.0 + (double)model_trunc_frac(a, m) / MODEL_ONE;
  double y = 1.0 + (double)model_trunc_frac(b, m) / MODEL_ONE;
  float product = (float)(x * y); /* exact: at most 24 significant bits */
  return approxsim_finish(a, b, model_trunc_float(product, m));
}
