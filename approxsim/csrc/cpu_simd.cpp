// cpu_simd.cpp: which SIMD level the CPU kernels use (detected at run time, or forced lower).
#include "cpu_simd.h"

#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define APPROXSIM_X86 1
#define APPROXSIM_AVX2 __attribute__((target("avx2,fma")))
#define APPROXSIM_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#define APPROXSIM_VBMI __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vbmi,avx2,fma")))
#define APPROXSIM_AVX512_BMI2 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi2")))
#endif

namespace approxsim {


int detected_simd_level() {
#ifdef APPROXSIM_X86
  static const int level = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
      return static_cast<int>(__builtin_cpu_supports("avx512vbmi") ? kAvx512Vbmi : kAvx512);
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return static_cast<int>(kAvx2);
    return static_cast<int>(kPortable);
  }();
  return level;
#else
  return kPortable;
#endif
}

static int forced_level = -1;

int simd_level() {
  int d = detected_simd_level();
  return (forced_level >= 0 && forced_level < d) ? forced_level : d;
}

void set_simd_level(int level) { forced_level = level; }

const char* simd_name(int level) {
  switch (level) {
    case kAvx512Vbmi: return "avx512_vbmi";
    case kAvx512: return "avx512";
    case kAvx2: return "avx2";
    default: return "portable";
  }
}

static int forced_halved = -1;

bool halved_512bit_ops() {
  if (forced_halved >= 0) return forced_halved == 1;
#ifdef APPROXSIM_X86
  static const bool halved = [] {
    __builtin_cpu_init();
    return __builtin_cpu_is("amdfam19h") && detected_simd_level() >= kAvx512;
  }();
  return halved;
#else
  return false;
#endif
}

void force_halved_512bit_ops(int value) { forced_halved = value; }

long l2_cache_bytes() {
  static const long bytes = [] {
#ifdef _SC_LEVEL2_CACHE_SIZE
    const long v = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (v > 0) return v;
#endif
    return 512L << 10;
  }();
  return bytes;
}

}  // namespace approxsim
