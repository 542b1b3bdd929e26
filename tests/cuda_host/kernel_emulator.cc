/* Runs the CUDA kernels of cuda/*.cu on the CPU: one block at a time, its 256 threads as
 * std::threads, shared memory a global buffer, barriers pthread barriers, atomics under a mutex.
 *
 * argv: name gx gy gz table p0 p1 out ints...   (out is read and written back)
 * ints: gemm: M t_emin t_emax rows cols K a_bs a_rs a_ks b_bs b_ks b_cs splits k_chunk;
 *       conv: M t_emin t_emax, the 18 geometry fields (geometry.h order), splits k_chunk.
 */
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "slurp.h"

struct dim3 {
  unsigned x, y, z;
};
static thread_local dim3 emu_thread_idx;
static thread_local dim3 blockIdx;
#define threadIdx emu_thread_idx
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
using std::min;
static inline float __uint_as_float(unsigned u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static inline unsigned __float_as_uint(float f) {
  unsigned u;
  memcpy(&u, &f, 4);
  return u;
}
template <class T>
static inline T __ldg(const T* p) {
  return *p;
}
static pthread_barrier_t emu_barrier;
static std::atomic<int> emu_or[3];
static thread_local int emu_generation = 0;
static inline void __syncthreads() { pthread_barrier_wait(&emu_barrier); }
/* One barrier per call: accumulator g % 3 collects this call's votes; thread 0 clears the next one,
   whose last readers finished before anyone could pass the previous barrier. */
static inline int __syncthreads_or(int p) {
  int g = emu_generation++ % 3;
  if (emu_thread_idx.x == 0) emu_or[(g + 1) % 3].store(0);
  if (p) emu_or[g].fetch_or(1);
  pthread_barrier_wait(&emu_barrier);
  return emu_or[g].load();
}
static std::mutex emu_atomic;
static inline float atomicAdd(float* p, float v) {
  std::lock_guard<std::mutex> g(emu_atomic);
  float old = *p;
  *p = old + v;
  return old;
}
static inline int atomicMin(int* p, int v) {
  std::lock_guard<std::mutex> g(emu_atomic);
  int old = *p;
  *p = std::min(old, v);
  return old;
}
static inline int atomicMax(int* p, int v) {
  std::lock_guard<std::mutex> g(emu_atomic);
  int old = *p;
  *p = std::max(old, v);
  return old;
}
alignas(16) unsigned char approxsim_smem[64 * 1024];

#include "conv.cu"
#include "gemm.cu"

typedef long long i64;
typedef void (*GemmFn)(const float*, const float*, float*, const void*, int, int, int, int, int, int, i64, i64, i64,
                       i64, i64, i64, int, int);
typedef void (*ConvFn)(const float*, const float*, float*, const void*, int, int, int, const approxsim_geometry, int,
                       int);

#define EMU_REG2(op, v)                                             \
  {"approxsim_" #op "_" #v "_L", (void*)approxsim_##op##_##v##_L}, \
      {"approxsim_" #op "_" #v "_S", (void*)approxsim_##op##_##v##_S}
#define EMU_REG(op) EMU_REG2(op, fp32), EMU_REG2(op, s16), EMU_REG2(op, s32), EMU_REG2(op, g32), EMU_REG2(op, gen)


int main(int argc, char** argv) {
  std::map<std::string, void*> fns = {EMU_REG(gemm), EMU_REG(conv_fwd), EMU_REG(conv_dgrad), EMU_REG(conv_wgrad)};
  std::string name = argv[1];
  if (!fns.count(name)) {
    fprintf(stderr, "no kernel %s\n", name.c_str());
    return 2;
  }
  unsigned gx = atoi(argv[2]), gy = atoi(argv[3]), gz = atoi(argv[4]);
  std::vector<char> table = slurp(argv[5]), p0 = slurp(argv[6]), p1 = slurp(argv[7]), out = slurp(argv[8]);
  std::vector<i64> I;
  for (int i = 9; i < argc; ++i) I.push_back(atoll(argv[i]));
  pthread_barrier_init(&emu_barrier, 0, 256);
  bool gemm = name.rfind("approxsim_gemm_", 0) == 0;
  approxsim_geometry G;
  if (!gemm) {
    approxsim_geom_int* fields = (approxsim_geom_int*)&G;
    for (int i = 0; i < (int)(sizeof G / sizeof *fields); ++i) fields[i] = I[3 + i];
  }
  const int tail = (int)I.size(); /* splits and k_chunk are the last two */
  void* fn = fns[name];
  const float* P0 = (const float*)p0.data();
  const float* P1 = (const float*)p1.data();
  float* OUT = (float*)out.data();
  /* 256 threads walk the blocks in step (a barrier between blocks keeps shared memory consistent). */
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 256; ++t)
    threads.emplace_back([&, t] {
      emu_thread_idx = {t, 0, 0};
      for (unsigned z = 0; z < gz; ++z)
        for (unsigned y = 0; y < gy; ++y)
          for (unsigned x = 0; x < gx; ++x) {
            blockIdx = {x, y, z};
            if (gemm)
              ((GemmFn)fn)(P0, P1, OUT, table.data(), I[0], I[1], I[2], I[3], I[4], I[5], I[6], I[7], I[8], I[9],
                           I[10], I[11], I[tail - 2], I[tail - 1]);
            else
              ((ConvFn)fn)(P0, P1, OUT, table.data(), I[0], I[1], I[2], G, I[tail - 2], I[tail - 1]);
            pthread_barrier_wait(&emu_barrier);
          }
    });
  for (auto& th : threads) th.join();
  FILE* f = fopen(argv[8], "wb");
  fwrite(out.data(), 1, out.size(), f);
  fclose(f);
  return 0;
}
