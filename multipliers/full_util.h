/*
 * full_util.h: helpers of the full-width (direct) built-in multipliers.
 *
 * These models run on the real operands inside approxsim's kernels, on the CPU
 * (plain C) and on the GPU (NVRTC), so this header includes no standard header
 * when compiled by NVRTC, calls no library function, and marks the models
 * __host__ __device__ under CUDA compilers.  Everything is integer arithmetic on
 * the operands' bit patterns, so every compiler gives the same bits.
 *
 * full_special() and full_pack() give the special cases of approxsim's DESIGN.md
 * section 1: NaN operands and Inf times zero/subnormal -> NaN; Inf times Inf or
 * normal -> Inf; zero or subnormal operands -> signed zero; results of 2^128 or
 * more -> Inf; results below 2^-126 -> signed zero.
 */
#ifndef APPROXSIM_FULL_UTIL_H_
#define APPROXSIM_FULL_UTIL_H_

#if !defined(__CUDACC_RTC__)
#include <stdint.h>
#endif

#if defined(__CUDACC__)
#define FULL_MODEL __host__ __device__
#define FULL_INLINE static __host__ __device__ __forceinline__
#else
#define FULL_MODEL
#define FULL_INLINE static inline
#endif

#define FULL_FRAC 0x007FFFFFu
#define FULL_ONE 0x00800000u /* 1.0 in the 23-bit fixed point of a fraction field */
#define FULL_SIGN 0x80000000u

FULL_INLINE uint32_t full_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  union { float f; uint32_t u; } v;
  v.f = f;
  return v.u;
#endif
}

FULL_INLINE float full_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  union { float f; uint32_t u; } v;
  v.u = u;
  return v.f;
#endif
}

/* Steps 1 and 2 of DESIGN.md section 1; returns 1 and sets *out when one applies. */
FULL_INLINE int full_special(uint32_t ua, uint32_t ub, uint32_t* out) {
  uint32_t sign = (ua ^ ub) & FULL_SIGN;
  uint32_t ea = (ua >> 23) & 0xFFu, eb = (ub >> 23) & 0xFFu;
  if (ea == 0xFFu || eb == 0xFFu) {
    int nan = (ea == 0xFFu && (ua & FULL_FRAC)) || (eb == 0xFFu && (ub & FULL_FRAC));
    *out = (nan || ea == 0 || eb == 0) ? 0x7FC00000u : (sign | 0x7F800000u);
    return 1;
  }
  if (ea == 0 || eb == 0) {
    *out = sign;
    return 1;
  }
  return 0;
}

/* sign | (1 + frac/2^23) * 2^e, with overflow to Inf and underflow to zero. */
FULL_INLINE float full_pack(uint32_t sign, int e, uint32_t frac) {
  if (e >= 128) return full_float(sign | 0x7F800000u);
  if (e < -126) return full_float(sign);
  return full_float(sign | ((uint32_t)(e + 127) << 23) | (frac & FULL_FRAC));
}

/* Unbiased exponent sum of two normal operands. */
FULL_INLINE int full_exp_sum(uint32_t ua, uint32_t ub) {
  return (int)((ua >> 23) & 0xFFu) + (int)((ub >> 23) & 0xFFu) - 254;
}

#endif /* APPROXSIM_FULL_UTIL_H_ */
