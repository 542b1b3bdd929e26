// cpu_simd.h: the SIMD levels of the CPU kernels.
//
// Each level's kernels are compiled with function-level target attributes and chosen at run time
// (__builtin_cpu_supports), so one build runs on every x86-64 CPU; other architectures get the
// portable level only. approxsim.backends.cpu forces a lower level from $APPROXSIM_SIMD.
#ifndef APPROXSIM_CPU_SIMD_H_
#define APPROXSIM_CPU_SIMD_H_

namespace approxsim {

enum SimdLevel { kPortable = 0, kAvx2 = 1, kAvx512 = 2, kAvx512Vbmi = 3 };

int detected_simd_level();       // what the CPU supports
int simd_level();                // what is used (detected, or lower when forced)
void set_simd_level(int level);  // forces a level <= detected; -1 restores
const char* simd_name(int level);

// Whether the CPU runs 512-bit vector operations as two 256-bit halves (AMD Zen 4: CPUID family 0x19
// with AVX-512; Zen 3, the same family, has none), detected, or forced for tests (1 or 0; -1 detects).
bool halved_512bit_ops();
void force_halved_512bit_ops(int value);

// Bytes of L2 cache per core, as the OS reports it (sysconf), or 512 KiB where it does not say.
long l2_cache_bytes();

}  // namespace approxsim

#endif  // APPROXSIM_CPU_SIMD_H_
