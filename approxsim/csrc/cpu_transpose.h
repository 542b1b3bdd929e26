// cpu_transpose.h: the AVX2 8x8 transpose the expanded-panel builders share (float and integer).
#ifndef APPROXSIM_CPU_TRANSPOSE_H_
#define APPROXSIM_CPU_TRANSPOSE_H_

#include "cpu_isa.h"

#ifdef APPROXSIM_X86
namespace approxsim {

// Transposes the 8x8 block r[0..7] (r[q] = row q) in place.
APPROXSIM_AVX2 inline void transpose8(__m256 r[8]) {
  __m256 t[8];
  for (int q = 0; q < 4; ++q) {
    t[2 * q] = _mm256_unpacklo_ps(r[2 * q], r[2 * q + 1]);
    t[2 * q + 1] = _mm256_unpackhi_ps(r[2 * q], r[2 * q + 1]);
  }
  __m256 u[8];
  for (int q = 0; q < 2; ++q) {
    u[4 * q] = _mm256_shuffle_ps(t[4 * q], t[4 * q + 2], 0x44);
    u[4 * q + 1] = _mm256_shuffle_ps(t[4 * q], t[4 * q + 2], 0xEE);
    u[4 * q + 2] = _mm256_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0x44);
    u[4 * q + 3] = _mm256_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0xEE);
  }
  for (int q = 0; q < 4; ++q) {
    r[q] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x20);
    r[q + 4] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x31);
  }
}

}  // namespace approxsim
#endif  // APPROXSIM_X86

#endif  // APPROXSIM_CPU_TRANSPOSE_H_
