/* The device-side arithmetic of cuda/*.cuh compiled for the CPU (g++), driven by tests/test_cuda.py.
 *
 * argv: op variant m t_emin t_emax fast table p0 p1 out nout ints...
 *   op "products": out[i] = p0[i] (*) p1[i] by the fast formula (fast = 1; the caller passes only
 *   pairs the predicate admits) or by the exact path (fast = 0);
 *   op "gemm" / "conv_fwd" / "conv_dgrad" / "conv_wgrad": the kernels' contraction, one output at a
 *   time through the loaders, each product on the fast path when the predicate admits the pair
 *   (fast = 1) or on the exact path.
 */
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "slurp.h"

#include "approxsim_loaders.cuh"


struct Prod { /* mirrors the kernel policies of approxsim_tile.cuh, on the host */
  const char* variant;
  int m, t_emin, t_emax;
  const approxsim_u32* words;
  const unsigned short* words16;
  const approxsim_entry* entries;
  int fast_ok(float a, float b) const { /* P::fast for a tile holding just a and b */
    approxsim_range ra = approxsim_range_empty(), rb = approxsim_range_empty();
    approxsim_range_add(&ra, approxsim_f2u(a));
    approxsim_range_add(&rb, approxsim_f2u(b));
    if (!strcmp(variant, "fp32")) return approxsim_fma_exact(ra, rb);
    if (!strcmp(variant, "gen")) return !ra.special && !rb.special;
    return approxsim_float_domain_exact(t_emin, t_emax, ra, rb);
  }
  float fast(float a, float b) const { /* P::mac without the accumulation */
    if (!strcmp(variant, "fp32")) return a * b;
    if (!strcmp(variant, "gen")) return approxsim_mul_split(a, b, entries, m);
    approxsim_u32 idx = approxsim_fast_offset(a, m, m) + approxsim_fast_offset(b, m, 0);
    float t = words16 ? approxsim_u2f((approxsim_u32)words16[idx] << 16) : approxsim_u2f(words[idx]);
    return t * (approxsim_fast_scale(a) * approxsim_fast_scale(b));
  }
  float exact(float a, float b) const {
    if (!strcmp(variant, "fp32")) return a * b;
    if (!strcmp(variant, "gen")) return approxsim_mul_split(a, b, entries, m);
    return approxsim_exact_packed(a, b, words, words16, m);
  }
};

/* The kernel's contraction, one output at a time: the fast path encodes absent elements as 0,
   the exact path skips them. */
template <class L>
static void contract(const L& ld, const Prod& p, int K, int fast) {
  for (int r = 0; r < ld.rows; ++r)
    for (int c = 0; c < ld.cols; ++c) {
      float acc = 0.0f;
      for (int k = 0; k < K; ++k) {
        float a = 0.0f, b = 0.0f;
        int pa = ld.a(r, k, &a), pb = ld.b(k, c, &b);
        float fa = pa ? a : 0.0f, fb = pb ? b : 0.0f; /* staged values: absent = 0 */
        if (fast && p.fast_ok(fa, fb)) {
          acc += p.fast(fa, fb);
        } else if (pa && pb) {
          acc += p.exact(a, b);
        }
      }
      ld.out[ld.out_offset(r, c)] = acc;
    }
}

int main(int argc, char** argv) {
  const char* op = argv[1];
  Prod p;
  p.variant = argv[2];
  p.m = atoi(argv[3]);
  p.t_emin = atoi(argv[4]);
  p.t_emax = atoi(argv[5]);
  int fast = atoi(argv[6]);
  std::vector<char> table = slurp(argv[7]), v0 = slurp(argv[8]), v1 = slurp(argv[9]);
  const char* out_path = argv[10];
  long nout = atol(argv[11]);
  long long I[32] = {0};
  for (int i = 12; i < argc; ++i) I[i - 12] = atoll(argv[i]);
  p.words = (const approxsim_u32*)table.data();
  p.words16 = !strcmp(p.variant, "s16") ? (const unsigned short*)table.data() : 0;
  p.entries = (const approxsim_entry*)table.data();
  const float* P0 = (const float*)v0.data();
  const float* P1 = (const float*)v1.data();
  std::vector<float> out(nout, -12345.0f);
  if (!strcmp(op, "products")) {
    for (long i = 0; i < nout; ++i) out[i] = fast ? p.fast(P0[i], P1[i]) : p.exact(P0[i], P1[i]);
  } else if (!strcmp(op, "gemm")) {
    GemmLoader ld;
    ld.A = P0;
    ld.B = P1;
    ld.out = out.data();
    ld.rows = (int)I[0];
    ld.cols = (int)I[1];
    ld.a_rs = I[3];
    ld.a_ks = I[4];
    ld.b_ks = I[5];
    ld.b_cs = I[6];
    contract(ld, p, (int)I[2], fast);
  } else {
    /* ints: the geometry struct's fields, in order (geometry.h) */
    approxsim_geometry G;
    approxsim_geom_int* fields = (approxsim_geom_int*)&G;
    for (int i = 0; i < (int)(sizeof G / sizeof *fields); ++i) fields[i] = I[i];
    for (int g = 0; g < G.groups; ++g) {
      ConvShape s = approxsim_conv_shape(G, g);
      if (!strcmp(op, "conv_fwd")) {
        ConvFwdLoader ld;
        ld.s = s;
        ld.p0 = P0;
        ld.p1 = P1;
        ld.out = out.data();
        ld.rows = s.n * s.oh * s.ow;
        ld.cols = s.cog;
        contract(ld, p, s.kh * s.kw * s.cig, fast);
      } else if (!strcmp(op, "conv_dgrad")) {
        ConvDgradLoader ld;
        ld.s = s;
        ld.p0 = P0;
        ld.p1 = P1;
        ld.out = out.data();
        ld.rows = s.n * s.h * s.w;
        ld.cols = s.cig;
        contract(ld, p, s.kh * s.kw * s.cog, fast);
      } else {
        ConvWgradLoader ld;
        ld.s = s;
        ld.p0 = P0;
        ld.p1 = P1;
        ld.out = out.data();
        ld.rows = s.kh * s.kw * s.cig;
        ld.cols = s.cog;
        contract(ld, p, s.n * s.oh * s.ow, fast);
      }
    }
  }
  FILE* f = fopen(out_path, "wb");
  fwrite(out.data(), sizeof(float), nout, f);
  fclose(f);
  return 0;
}
