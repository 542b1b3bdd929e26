/*
 * bfloat16 multiplication: truncate both operands to bfloat16 (7 fraction bits),
 * multiply in float32, truncate the product to bfloat16.  The product of two
 * 8-bit significands is exact in float32, so only the final truncation loses
 * precision.
 *
 * Reference: D. Kalamkar et al., "A Study of BFLOAT16 for Deep Learning
 * Training", arXiv:1905.12322, 2019.
 */
#include "model_util.h"

float bf16(float a, float b) {
  float ta = model_float(0x3F800000u | model_trunc_frac(a, 7));
  float tb = model_float(0x3F800000u | model_trunc_frac(b, 7));
  return approxsim_finish(a, b, model_trunc_float(ta * tb, 7));
}
