// cpu_gemm.cpp: the CPU backend's entry points: batched matmul and the three convolutions, each a
// list of GEMM jobs (batch entries, groups) for the driver (cpu_driver.h).
#include "cpu_gemm.h"

#include <string>
#include <vector>

#include "cpu_depthwise.h"
#include "cpu_driver.h"

namespace approxsim {

using detail::GatherDyA;
using detail::GeneralB;
using detail::PatchA;
using detail::PatchTA;
using detail::StridedA;

static int g_forced_method = -1;
int forced_method() { return g_forced_method; }
void force_method(int method) { g_forced_method = method; }
static thread_local std::string g_last_method = "none";
void note_method(Method method, bool transposed) {
  g_last_method = std::string(method_name(method)) + (transposed ? " (transposed)" : "");
}
const char* last_method() { return g_last_method.c_str(); }
const char* method_name(Method method) {
  switch (method) {
    case Method::kExact: return "exact";
    case Method::kExpanded: return "expanded";
    case Method::kLinear: return "linear";
    default: return "lookup";
  }
}

Work& scratch() {
  thread_local Work w;  // one per thread, shared by every GEMM the thread runs
  return w;
}

void matmul_batched(const float* a, const float* b, float* c, const int64_t* a_index, const int64_t* b_index,
                    int64_t batch, int64_t a_size, int64_t b_size, int64_t m, int64_t n, int64_t k, bool ta, bool tb,
                    const Table& t, int threads) {
  // a[r][k]: row-major (M, K) -> strides (K, 1); transposed (K, M) -> (1, M). Likewise b.
  std::vector<Job<StridedA, GeneralB>> jobs;
  jobs.reserve(batch);
  for (int64_t q = 0; q < batch; ++q) {
    const float* A = a + a_index[q] * a_size;
    const float* B = b + b_index[q] * b_size;
    jobs.push_back({StridedA{A, ta ? 1 : k, ta ? m : 1}, GeneralB{B, std::max<int64_t>(k, 1), 0, tb ? 1 : n,
                    tb ? k : 1}, c + q * m * n, n, false});
  }
  gemm(jobs, m, n, k, t, threads);
}

void conv2d_forward(const float* x, const float* w, float* y, const Geom& g, const Table& t, int threads) {
  if (depthwise(DepthwiseOp::kForward, x, w, y, g, t, threads)) return;
  const int64_t cig = cin_per_group(g), cog = cout_per_group(g), K = g.kh * g.kw * cig, M = g.n * g.oh * g.ow;
  std::vector<Job<PatchA, GeneralB>> jobs;
  for (int64_t grp = 0; grp < g.groups; ++grp)  // w[(tap*cig + ci)*cout + grp*cog + co]
    jobs.push_back({PatchA{x, g, grp * cig}, GeneralB{w + grp * cog, K, 0, g.cout, 1}, y + grp * cog, g.cout, false});
  gemm(jobs, M, cog, K, t, threads);
}

void conv2d_input_grad(const float* dy, const float* w, float* dx, const Geom& g, const Table& t, int threads) {
  if (depthwise(DepthwiseOp::kInputGrad, dy, w, dx, g, t, threads)) return;
  const int64_t cig = cin_per_group(g), cog = cout_per_group(g), K = g.kh * g.kw * cog, M = g.n * g.h * g.w;
  std::vector<Job<GatherDyA, GeneralB>> jobs;
  for (int64_t grp = 0; grp < g.groups; ++grp)  // k = (tap, co), n = ci
    jobs.push_back({GatherDyA{dy, g, grp * cog}, GeneralB{w + grp * cog, cog, cig * g.cout, 1, g.cout},
                    dx + grp * cig, g.c, false});
  gemm(jobs, M, cig, K, t, threads);
}

void conv2d_filter_grad(const float* x, const float* dy, float* dw, const Geom& g, const Table& t, int threads) {
  if (depthwise(DepthwiseOp::kFilterGrad, x, dy, dw, g, t, threads)) return;
  const int64_t cig = cin_per_group(g), cog = cout_per_group(g), M = g.kh * g.kw * cig, K = g.n * g.oh * g.ow;
  std::vector<Job<PatchTA, GeneralB>> jobs;
  for (int64_t grp = 0; grp < g.groups; ++grp)  // k = p, n = co
    jobs.push_back({PatchTA{x, g, grp * cig}, GeneralB{dy + grp * cog, std::max<int64_t>(K, 1), 0, g.cout, 1},
                    dw + grp * cog, g.cout, false});
  gemm(jobs, M, cog, K, t, threads);
}

}  // namespace approxsim
