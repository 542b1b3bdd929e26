/* Runs the direct kernels of a generated CUDA source (csrc/direct_cuda.h: float or integer models,
 * integer tables) on the CPU: one thread walks each kernel's grid-stride loop over all items.
 *
 * Compiled with -DAPPROXSIM_GENERATED="path/to/source.cu" (the string NVRTC gets, unchanged).
 * argv: op out_file in0 in1 table ints...  (integer operands: int32 files; outputs int64; table:
 *       int32 file or "-")
 * ints: multiply: count; matmul: items m k n a_batch_stride b_batch_stride;
 *       conv_fwd / conv_dgrad / conv_wgrad: items, then the 18 geometry fields (geometry.h order).
 */
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "slurp.h"

struct dim3 {
  unsigned x, y, z;
};
static const dim3 blockIdx = {0, 0, 0}, threadIdx = {0, 0, 0}, blockDim = {1, 1, 1}, gridDim = {1, 1, 1};
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

#include APPROXSIM_GENERATED

int main(int argc, char** argv) {
  if (argc < 6) return 2;
  const std::string op = argv[1];
  std::vector<char> a = slurp(argv[3]), b = slurp(argv[4]), table;
#ifdef APPROXSIM_INT_TABLE
  table = slurp(argv[5]);
  approxsim_int_table_ = reinterpret_cast<const int*>(table.data());
#endif
  std::vector<long long> v;
  for (int i = 6; i < argc; ++i) v.push_back(atoll(argv[i]));
  const approxsim_dl_in* pa = reinterpret_cast<const approxsim_dl_in*>(a.data());
  const approxsim_dl_in* pb = reinterpret_cast<const approxsim_dl_in*>(b.data());
  const long long items = v.at(0);
  std::vector<approxsim_dl_out> out(static_cast<size_t>(items));
  if (op == "multiply") {
    approxsim_direct_multiply(pa, pb, out.data(), items);
  } else if (op == "matmul") {
    approxsim_direct_matmul(pa, pb, out.data(), items, v.at(1), v.at(2), v.at(3), v.at(4), v.at(5));
  } else {
    approxsim_geometry g;
    long long* f = reinterpret_cast<long long*>(&g);
    for (size_t i = 0; i < sizeof g / sizeof(long long); ++i) f[i] = v.at(1 + i);
    if (op == "conv_fwd") approxsim_direct_conv_fwd(pa, pb, out.data(), items, g);
    else if (op == "conv_dgrad") approxsim_direct_conv_dgrad(pa, pb, out.data(), items, g);
    else if (op == "conv_wgrad") approxsim_direct_conv_wgrad(pa, pb, out.data(), items, g);
    else return 3;
  }
  FILE* o = fopen(argv[2], "wb");
  if (!o || fwrite(out.data(), sizeof(approxsim_dl_out), out.size(), o) != out.size()) return 4;
  fclose(o);
  return 0;
}
