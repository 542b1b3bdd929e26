/*
 * full_util.h: helpers of the full-width (direct) built-in multipliers.
 *
 * These models run on the real operands inside approxsim's kernels, on the CPU
 * (plain C) and on the GPU (NVRTC), so this header includes no standard header
 * when compiled by NVRTC, calls no library function, and marks the models
 * __host__ __device__ under CUDA compilers.  Everything is integer arithmetic on
 * the operands' bit patterns, so every compiler gives the same bits.
 *
 * full_result() gives the special cases of approxsim's DESIGN.md section 1: NaN operands and Inf times zero/subnormal -> NaN; Inf times Inf or
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

/*
 * The result for operands ua, ub: sign(a) ^ sign(b) times (1 + frac/2^23) * 2^e, with
 * overflow to Inf and underflow to zero, unless steps 1-2 of DESIGN.md section 1 (NaN,
 * Inf, zero and subnormal operands) apply.  Written with selects, not branches, so
 * that compilers vectorise the kernels' loops over it; e and frac may be garbage for
 * special operands.
 */
FULL_INLINE float full_result(uint32_t ua, uint32_t ub, int e, uint32_t frac) {
  const uint32_t sign = (ua ^ ub) & FULL_SIGN;
  const uint32_t ea = (ua >> 23) & 0xFFu, eb = (ub >> 23) & 0xFFu;
  const int inf_or_nan = (ea == 0xFFu) | (eb == 0xFFu);
  const int zero_or_sub = (ea == 0u) | (eb == 0u);
  const int nan = ((ea == 0xFFu) & ((ua & FULL_FRAC) != 0u)) | ((eb == 0xFFu) & ((ub & FULL_FRAC) != 0u)) |
                  (inf_or_nan & zero_or_sub);
  uint32_t out = sign | ((uint32_t)(e + 127) << 23) | (frac & FULL_FRAC);
  out = e >= 128 ? (sign | 0x7F800000u) : out;
  out = e < -126 ? sign : out;
  out = zero_or_sub ? sign : out;
  out = inf_or_nan ? (sign | 0x7F800000u) : out;
  out = nan ? 0x7FC00000u : out;
  return full_float(out);
}

/* Unbiased exponent sum of two normal operands. */
FULL_INLINE int full_exp_sum(uint32_t ua, uint32_t ub) {
  return (int)((ua >> 23) & 0xFFu) + (int)((ub >> 23) & 0xFFu) - 254;
}

#endif /* APPROXSIM_FULL_UTIL_H_ */
