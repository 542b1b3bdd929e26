// cpu_isa.h: the micro-kernels and panel conversions of each instruction set (internal to the
// CPU backend; cpu_kernels.cpp chooses among them).
#ifndef APPROXSIM_CPU_ISA_H_
#define APPROXSIM_CPU_ISA_H_

#include <cstdint>

#include "cpu_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
// GCC 12's AVX-512 headers make their undefined vectors by self-initialization (__Y = __Y), which its
// uninitialized-use analysis then flags in the kernels that inline them: dozens of false positives a
// build (cpu_int.cpp, cpu_kernels_avx512.cpp), which would bury a real warning in the output.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#define APPROXSIM_X86 1
#define APPROXSIM_AVX2 __attribute__((target("avx2,fma")))
#define APPROXSIM_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#define APPROXSIM_VBMI __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vbmi,avx2,fma")))
#define APPROXSIM_AVX512_BMI2 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi2")))
#endif

namespace approxsim {

#define APPROXSIM_TABLE_KERNEL(name)                                                                       \
  void name(int kc, int as, const int32_t* aoff, const float* asc, const void* bidx, const void* bext,        \
            const void* bmask, const float* bsc, const Table& t, float* tile)
#define APPROXSIM_EXACT_KERNEL(name) void name(int kc, int as, const float* a, const float* b, float* tile)

APPROXSIM_TABLE_KERNEL(table_portable);
APPROXSIM_EXACT_KERNEL(exact_portable);
void convert_a_scalar(const float* raw, int n, int m, int aoff_shift, int32_t* off, float* sc, Stats& s);
void compact_a4_scalar(const float* raw, int64_t stride, int n, uint16_t* dst, Stats& s);
void convert_linear_scalar(float* raw, int n, int m, const float* cls, int cls_shift, float* sc, Stats& s);
void convert_b_bytes8_scalar(const float* raw, int m, uint8_t* idx, uint16_t* ext, uint64_t* mask, Stats& s);

template <int P>
void linear_portable(int kc, int as, const float* au, const float* asc, const float* bv, const float* bsc,
                     const LinearSum& lin, float* tile);
template <int NR>
void expanded_portable(int kc, const uint16_t* a, int m, const float* bx, float* acc);
template <int NR>
void expand_build_portable(const float* raw, int kc, const Table& t, float* bx, Stats& s);

#ifdef APPROXSIM_X86
template <int P>
APPROXSIM_AVX2 void linear_avx2(int kc, int as, const float* au, const float* asc, const float* bv, const float* bsc,
                                const LinearSum& lin, float* tile);
template <int P>
APPROXSIM_AVX512 void linear_avx512(int kc, int as, const float* au, const float* asc, const float* bv,
                                    const float* bsc, const LinearSum& lin, float* tile);
APPROXSIM_AVX2 void expanded_avx2(int kc, const uint16_t* a, int m, const float* bx, float* acc);
APPROXSIM_AVX2 void expanded8_avx2(int kc, const uint16_t* a, int m, const float* bx, float* acc);
APPROXSIM_AVX2 void expanded8_bf16_avx2(int kc, const uint16_t* a, int m, const uint16_t* bx, float* acc);
template <int NR>
APPROXSIM_AVX2 void expand_build_avx2(const float* raw, int kc, const Table& t, float* bx, Stats& s);
template <int NR>
APPROXSIM_AVX2 void expand_build_bf16_avx2(const float* raw, int kc, const Table& t, uint16_t* bx, Stats& s);
template <int NR>
APPROXSIM_AVX2 void expand_build_words_avx2(const float* raw, int kc, const Table& t, uint16_t* bx, Stats& s);
APPROXSIM_AVX2 void compact_a4_avx2(const float* raw, int64_t stride, int n, uint16_t* dst, Stats& s);
APPROXSIM_AVX2 void convert_linear_avx2(float* raw, int n, int m, const float* cls, int cls_shift, float* sc,
                                        Stats& s);
APPROXSIM_AVX2 void expanded_bf16_avx2(int kc, const uint16_t* a, int m, const uint16_t* bx, float* acc);
APPROXSIM_AVX2 void expanded32_bf16_avx2(int kc, const uint16_t* a, int m, const uint16_t* bx, float* acc);
APPROXSIM_AVX2 APPROXSIM_TABLE_KERNEL(table_avx2);
APPROXSIM_AVX2 APPROXSIM_EXACT_KERNEL(exact_avx2);
APPROXSIM_AVX512 APPROXSIM_TABLE_KERNEL(table_avx512_gather);
template <int W>
APPROXSIM_AVX512 APPROXSIM_TABLE_KERNEL(table_avx512_permute);
APPROXSIM_VBMI APPROXSIM_TABLE_KERNEL(table_avx512_bytes);
APPROXSIM_AVX512 APPROXSIM_EXACT_KERNEL(exact_avx512);
APPROXSIM_AVX512 void expanded_avx512(int kc, const uint16_t* a, int m, const float* bx, float* acc);
APPROXSIM_AVX512 void expanded_bf16_avx512(int kc, const uint16_t* a, int m, const uint16_t* bx, float* acc);
APPROXSIM_AVX512 void expanded32_bf16_avx512(int kc, const uint16_t* a, int m, const uint16_t* bx, float* acc);
APPROXSIM_AVX512 void convert_a_avx512(const float* raw, int n, int m, int aoff_shift, int32_t* off, float* sc,
                                       Stats& s);
APPROXSIM_AVX512_BMI2 void convert_b_bytes8_avx512(const float* raw, int m, uint8_t* idx, uint16_t* ext,
                                                   uint64_t* mask, Stats& s);
#endif

}  // namespace approxsim

#endif  // APPROXSIM_CPU_ISA_H_
