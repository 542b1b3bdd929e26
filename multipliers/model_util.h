/*
 * model_util.h: helpers shared by the built-in multiplier models.
 *
 * A model computes the significand of the product of two operands' mantissas
 * (a value in [1, 4)); approxsim_finish() attaches sign and exponents and
 * applies the special cases of approxsim's DESIGN.md section 1, so a model is a
 * complete float(float, float) function on every input, not only on the grid.
 */
#ifndef APPROXSIM_MODEL_UTIL_H_
#define APPROXSIM_MODEL_UTIL_H_

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifndef APPROXSIM_MANTISSA_BITS
#define APPROXSIM_MANTISSA_BITS 7
#endif

#define MODEL_FRAC_MASK 0x007FFFFFu
#define MODEL_ONE (1u << 23) /* 1.0 in the 23-bit fixed point of a fraction field */

static inline uint32_t model_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

static inline float model_float(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* The fraction field of x truncated to its top m bits (still in 2^-23 units). */
static inline uint32_t model_trunc_frac(float x, int m) {
  uint32_t keep = ((1u << m) - 1u) << (23 - m);
  return model_bits(x) & MODEL_FRAC_MASK & keep;
}

/* Truncates a positive float to m fraction bits. */
static inline float model_trunc_float(float x, int m) {
  uint32_t keep = ~((1u << (23 - m)) - 1u);
  return model_float(model_bits(x) & keep);
}

/*
 * sign(a) ^ sign(b), times sig * 2^(Ea + Eb), with NaN/Inf/zero/subnormal operands,
 * overflow (>= 2^128 -> Inf) and underflow (< 2^-126 -> 0) as in DESIGN.md section 1.
 */
static inline float approxsim_finish(float a, float b, double sig) {
  uint32_t ua = model_bits(a), ub = model_bits(b);
  uint32_t sign = (ua ^ ub) & 0x80000000u;
  int ea = (int)((ua >> 23) & 0xFFu), eb = (int)((ub >> 23) & 0xFFu);
  if (ea == 0xFF || eb == 0xFF) {
    if (((ea == 0xFF) && (ua & MODEL_FRAC_MASK)) || ((eb == 0xFF) && (ub & MODEL_FRAC_MASK)) ||
        ea == 0 || eb == 0)
      return model_float(0x7FC00000u);
    return model_float(sign | 0x7F800000u);
  }
  if (ea == 0 || eb == 0) return model_float(sign);
  double v = ldexp(sig, ea + eb - 254); /* exact: sig has few bits, double has range */
  if (v >= 0x1p128) return model_float(sign | 0x7F800000u);
  if (v < 0x1p-126) return model_float(sign);
  return model_float(sign | model_bits((float)v));
}

#endif /* APPROXSIM_MODEL_UTIL_H_ */
