// cpu_gemm.cpp: the CPU backend's entry points: batched matmul and the three convolutions, each a
// list of GEMM jobs (batch entries, groups) for the driver (cpu_driver.h).
#include "cpu_gemm.h"

#include <algorithm>
#include <string>
#include <vector>

#include "cpu_depthwise.h"
#include "cpu_driver.h"
#include "cpu_pool.h"

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

// Input gradient by columns (col2im), for few input channels per group: Y = dy (*) W', one GEMM per
// group with a row per output pixel, a column per (tap, ci) and the contraction over co (products
// T[dy][w], each dy operand packed once rather than once per tap that reaches it, and no product for
// the taps that reach no output), then dx[p][ci] = the sum of Y[o][(tap, ci)] over the (o, tap) that
// reach p, added in (o, tap) order by one thread per image; by chunks of images (Y at most
// kCol2imMaxBytes). The sums run in another order than the patch GEMM's (DESIGN.md leaves it
// unspecified). The patch GEMM has only cig columns, which leave most of a panel empty; by columns
// it has taps * cig. Measured (AMD Zen 5, 2 threads, medians of 20
// in alternating runs): LeNet-5's second convolution (batch 128, 5x5, 16 -> 6 channels) 3.73 -> 1.81 ms
// (VBMI), 5.06 -> 3.75 ms (AVX2); its first (1 -> 6) 6.79 -> 4.45 ms, 9.67 -> 4.66 ms; a 3x3 conv,
// batch 32, 32x32, 64 filters: with 8 input channels 6.4 -> 5.9 ms (VBMI), 13.0 -> 8.5 ms (AVX2), with
// 16 slower at VBMI (10.2 -> 13.1 ms), with 32 or 64 slower everywhere (Y is 9x the input).
constexpr int64_t kCol2imMaxCin = 8;  // input channels per group up to which the input gradient is by columns
constexpr int64_t kCol2imMaxBytes = int64_t(64) << 20;  // of Y per chunk of images, at most
static int g_input_grad_mode = -1;
void force_input_grad(int mode) { g_input_grad_mode = mode; }

// Y of input_grad_by_columns lives in the calling thread's scratch (Work::columns), kept between
// calls up to kKeptColumnsBytes, so that a training step's calls do not fault fresh pages in and zero
// them each time: LeNet-5's second convolution, 7.7 MB of Y, 2.32-2.37 -> 2.07-2.10 ms (medians of 100
// in alternating runs, AMD Zen 4, AVX2 level, 2 threads).
constexpr size_t kKeptColumnsBytes = size_t(16) << 20;

static bool input_grad_by_columns(const float* dy, const float* w, float* dx, const Geom& g, const Table& t,
                                  int threads) {
  const int64_t cig = cin_per_group(g), cog = cout_per_group(g), taps = g.kh * g.kw, plane = g.oh * g.ow;
  const int64_t N = taps * cig, image_bytes = plane * N * g.groups * int64_t(sizeof(float));
  const bool wanted = g_input_grad_mode < 0 ? cig <= kCol2imMaxCin : g_input_grad_mode == 1;
  if (!wanted || taps < 2 || image_bytes > kCol2imMaxBytes) return false;
  // By chunks of images, so that Y stays within kCol2imMaxBytes whatever the batch.
  const int64_t per_chunk = std::max<int64_t>(1, std::min<int64_t>(g.n, kCol2imMaxBytes / std::max<int64_t>(image_bytes, 1)));
  std::vector<float>& y = scratch().columns;
  for (int64_t n0 = 0; n0 < g.n; n0 += per_chunk) {
    const int64_t images = std::min(per_chunk, g.n - n0), M = images * plane;
    y.resize(size_t(g.groups) * M * N);
    const float* dyc = dy + n0 * plane * g.cout;
    std::vector<Job<StridedA, GeneralB>> jobs;
    for (int64_t grp = 0; grp < g.groups; ++grp)  // k = co, n = (tap, ci): w[(tap*cig + ci)*cout + grp*cog + co]
      jobs.push_back({StridedA{dyc + grp * cog, g.cout, 1}, GeneralB{w + grp * cog, std::max<int64_t>(cog, 1), 0, 1, g.cout},
                      y.data() + grp * M * N, N, false});
    gemm(jobs, M, N, cog, t, threads);
    ThreadPool::instance().parallel_for(static_cast<int>(images), threads, [&](int q) {
      float* img = dx + (n0 + q) * g.h * g.w * g.c;
      std::fill(img, img + g.h * g.w * g.c, 0.0f);
      for (int64_t grp = 0; grp < g.groups; ++grp) {
        const float* yg = y.data() + grp * M * N + int64_t(q) * plane * N;
        for (int64_t oy = 0; oy < g.oh; ++oy)
          for (int64_t ox = 0; ox < g.ow; ++ox) {
            const float* yo = yg + (oy * g.ow + ox) * N;
            for (int64_t ky = 0; ky < g.kh; ++ky) {
              const int64_t iy = oy * g.sh - g.pad_top + ky * g.dh;
              if (iy < 0 || iy >= g.h) continue;
              for (int64_t kx = 0; kx < g.kw; ++kx) {
                const int64_t ix = ox * g.sw - g.pad_left + kx * g.dw;
                if (ix < 0 || ix >= g.w) continue;
                float* d = img + (iy * g.w + ix) * g.c + grp * cig;
                const float* v = yo + (ky * g.kw + kx) * cig;
                for (int64_t ci = 0; ci < cig; ++ci) d[ci] += v[ci];
              }
            }
          }
      }
    });
  }
  if (y.capacity() * sizeof(float) > kKeptColumnsBytes) std::vector<float>().swap(y);
  return true;
}

void conv2d_input_grad(const float* dy, const float* w, float* dx, const Geom& g, const Table& t, int threads) {
  if (depthwise(DepthwiseOp::kInputGrad, dy, w, dx, g, t, threads)) return;
  if (input_grad_by_columns(dy, w, dx, g, t, threads)) return;
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
