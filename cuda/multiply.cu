/*
 * multiply.cu: elementwise approximate products out[i] = a[i] (*) b[i] (DESIGN.md section 1),
 * through the header's approxsim_mul_split on the split table entries; m = 0 is the exact
 * IEEE product.  Grid-stride loop over `count` elements.
 */
#include "approx_product.h"

extern "C" __global__ void approxsim_multiply(const float* __restrict__ a, const float* __restrict__ b,
                                              float* __restrict__ out, const approxsim_entry* __restrict__ entries,
                                              int m, long long count) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < count;
       i += (long long)blockDim.x * gridDim.x) {
    out[i] = m == 0 ? __fmul_rn(a[i], b[i]) : approxsim_mul_split(a[i], b[i], entries, m);
  }
}
