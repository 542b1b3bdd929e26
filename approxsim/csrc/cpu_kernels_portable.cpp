// cpu_kernels_portable.cpp: the portable micro-kernels and panel conversions (any CPU).
#include "cpu_isa.h"

#include <cmath>
#include <cstring>

namespace approxsim {


void table_portable(int kc, int as, const int32_t* aoff, const float* asc, const void* bidx, const void*,
                           const void*, const float* bsc, const Table& t, float* tile) {
  const int32_t* bj = static_cast<const int32_t*>(bidx);
  const float* T = t.f32.data();
  float acc[4 * 16] = {0};
  for (int k = 0; k < kc; ++k) {
    for (int r = 0; r < 4; ++r) {
      const float* row = T + aoff[r * as + k];
      const float s = asc[r * as + k];
      for (int c = 0; c < 16; ++c) acc[r * 16 + c] += (row[bj[k * 16 + c]] * bsc[k * 16 + c]) * s;
    }
  }
  std::memcpy(tile, acc, sizeof acc);
}

void exact_portable(int kc, int as, const float* a, const float* b, float* tile) {
  float acc[4 * 16] = {0};
  for (int k = 0; k < kc; ++k)
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 16; ++c) acc[r * 16 + c] += a[r * as + k] * b[k * 16 + c];
  std::memcpy(tile, acc, sizeof acc);
}



void convert_a_scalar(const float* raw, int n, int m, int aoff_shift, int32_t* off, float* sc, Stats& s) {
  const int shift = 23 - m;
  const uint32_t imask = (1u << m) - 1;
  for (int q = 0; q < n; ++q) {
    const uint32_t u = bits(raw[q]);
    account(u, s);
    if (m == 0) {
      sc[q] = raw[q];
    } else {
      off[q] = ((u >> 23) & 0xFFu) == 0 ? 0 : static_cast<int32_t>(((u >> shift) & imask) << aoff_shift);
      sc[q] = scale_of(u);
    }
  }
}

void compact_a4_scalar(const float* raw, int64_t stride, int n, uint16_t* dst, Stats& s) {
  for (int r = 0; r < kFreeMR; ++r)
    for (int k = 0; k < n; ++k) {
      const uint32_t u = bits(raw[r * stride + k]);
      account(u, s);
      dst[k * kFreeMR + r] = compact_a(u);
    }
}

void convert_linear_scalar(float* raw, int n, int m, const float* cls, int cls_shift, float* sc, Stats& s) {
  const int shift = 23 - m;
  const uint32_t imask = (1u << m) - 1;
  for (int q = 0; q < n; ++q) {
    const uint32_t u = bits(raw[q]);
    account(u, s);
    sc[q] = scale_of(u);
    const uint32_t i = (u >> shift) & imask;
    raw[q] = cls_shift >= 0 ? static_cast<float>(i >> cls_shift) : cls[i];
  }
}

void convert_b_bytes8_scalar(const float* raw, int m, uint8_t* idx, uint16_t* ext, uint64_t* mask,
                                    Stats& s) {
  const int shift = 23 - m;
  const uint32_t imask = (1u << m) - 1;
  uint64_t mk = 0;
  for (int c = 0; c < 64; ++c) {
    const uint32_t u = bits(raw[c]);
    account(u, s);
    const uint32_t e = (u >> 23) & 0xFFu;
    idx[byte_pos(c)] = static_cast<uint8_t>((u >> shift) & imask);
    const int wp = word_pos(c);
    ext[wp] = static_cast<uint16_t>(((e - 127u) << 7) + ((u >> 31) << 15));  // modulo 2^16
    if (e != 0) mk |= uint64_t(1) << wp;
  }
  *mask = mk;
}


// ---------------------------------------------------------------------------------
// Lookup-free kernels (MR = 4, NR = 16)

// The table entry of class sum s: fma(beta_p, s, alpha_p), p the last piece whose threshold s reaches.
template <int P>
static inline float linear_entry(const LinearSum& lin, float s) {
  int p = 0;
  for (int q = 1; q < P; ++q) p = s >= lin.theta[q] ? q : p;
  return std::fma(lin.beta[p], s, lin.alpha[p]);
}

template <int P>
void linear_portable(int kc, int as, const float* au, const float* asc, const float* bv, const float* bsc,
                     const LinearSum& lin, float* tile) {
  float acc[kFreeMR * kFreeNR] = {0};
  for (int k = 0; k < kc; ++k)
    for (int r = 0; r < kFreeMR; ++r) {
      const float u = au[r * as + k], sa = asc[r * as + k];
      for (int c = 0; c < kFreeNR; ++c) {
        const float t = linear_entry<P>(lin, u + bv[k * kFreeNR + c]);
        acc[r * kFreeNR + c] += t * (sa * bsc[k * kFreeNR + c]);
      }
    }
  std::memcpy(tile, acc, sizeof acc);
}

template void linear_portable<1>(int, int, const float*, const float*, const float*, const float*, const LinearSum&,
                                 float*);
template void linear_portable<2>(int, int, const float*, const float*, const float*, const float*, const LinearSum&,
                                 float*);
template void linear_portable<3>(int, int, const float*, const float*, const float*, const float*, const LinearSum&,
                                 float*);
template void linear_portable<4>(int, int, const float*, const float*, const float*, const float*, const LinearSum&,
                                 float*);

template <int NR>
void expanded_portable(int kc, const uint16_t* a, int m, const float* bx, float* acc) {
  for (int k = 0; k < kc; ++k) {
    const float* kb = bx + (size_t(k) << m) * NR;
    for (int r = 0; r < kFreeMR; ++r) {
      const uint16_t e = a[k * kFreeMR + r];
      const float* row = kb + compact_row(e, m, NR);
      const float sa = compact_scale(e);
      for (int c = 0; c < NR; ++c) acc[r * NR + c] += row[c] * sa;
    }
  }
}

template <int NR>
void expand_build_portable(const float* raw, int kc, const Table& t, float* bx, Stats& s) {
  const int m = t.m, p = t.prow, side = 1 << p, shift = 23 - m;
  const uint32_t imask = (1u << m) - 1;
  const float* cols = t.cols.data();
  for (int k = 0; k < kc; ++k)
    for (int c = 0; c < NR; ++c) {
      const uint32_t u = bits(raw[k * NR + c]);
      account(u, s);
      const float* col = cols + (size_t((u >> shift) & imask) << p);
      const float sb = scale_of(u);
      for (int i = 0; i < side; ++i) bx[((size_t(k) << p) + i) * NR + c] = col[i] * sb;
    }
}

template void expanded_portable<kFreeNR>(int, const uint16_t*, int, const float*, float*);
template void expanded_portable<kNarrowNR>(int, const uint16_t*, int, const float*, float*);
template void expand_build_portable<kFreeNR>(const float*, int, const Table&, float*, Stats&);
template void expand_build_portable<kNarrowNR>(const float*, int, const Table&, float*, Stats&);

}  // namespace approxsim
