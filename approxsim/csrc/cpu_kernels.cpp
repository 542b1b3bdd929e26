// cpu_kernels.cpp: which micro-kernels and panel conversions run, for a table and the SIMD level.
#include "cpu_isa.h"

namespace approxsim {

void convert_a(const float* raw, int n, int m, int aoff_shift, int32_t* off, float* sc, Stats& s) {
#ifdef APPROXSIM_X86
  if (simd_level() >= kAvx512) return convert_a_avx512(raw, n, m, aoff_shift, off, sc, s);
#endif
  convert_a_scalar(raw, n, m, aoff_shift, off, sc, s);
}

void compact_a4(const float* raw, int64_t stride, int n, uint16_t* dst, Stats& s) {
#ifdef APPROXSIM_X86
  if (simd_level() >= kAvx2) return compact_a4_avx2(raw, stride, n, dst, s);
#endif
  compact_a4_scalar(raw, stride, n, dst, s);
}

void convert_linear(float* raw, int n, int m, const float* cls, int cls_shift, float* sc, Stats& s) {
#ifdef APPROXSIM_X86
  if (simd_level() >= kAvx2) return convert_linear_avx2(raw, n, m, cls, cls_shift, sc, s);
#endif
  convert_linear_scalar(raw, n, m, cls, cls_shift, sc, s);
}

void convert_b_bytes8(const float* raw, int m, uint8_t* idx, uint16_t* ext, uint64_t* mask, Stats& s) {
#ifdef APPROXSIM_X86
  if (simd_level() >= kAvx512) return convert_b_bytes8_avx512(raw, m, idx, ext, mask, s);
#endif
  convert_b_bytes8_scalar(raw, m, idx, ext, mask, s);
}

bool byte_permute_lookups(const Table& t) {
#ifdef APPROXSIM_X86
  return t.m >= 1 && t.m <= 7 && t.bf16_exact && t.all_normal && simd_level() >= kAvx512Vbmi;
#else
  return false;
#endif
}

KernelSet select_kernels(const Table& t) {
  KernelSet ks{4, 16, kGather32, t.m, table_portable, exact_portable};
#ifdef APPROXSIM_X86
  const int level = simd_level();
  if (level >= kAvx512) {
    ks = KernelSet{8, 32, kGather32, t.m, table_avx512_gather, exact_avx512};
    if (byte_permute_lookups(t)) {
      ks = KernelSet{4, 64, kBytes8, 8, table_avx512_bytes, exact_avx512};
    } else if (t.m >= 1 && t.m <= 7 && t.bf16_exact) {
      ks.bformat = kPermute16;
      ks.table = t.m <= 5 ? table_avx512_permute<5> : t.m == 6 ? table_avx512_permute<6> : table_avx512_permute<7>;
    }
  } else if (level >= kAvx2) {
    ks = KernelSet{4, 16, kGather32, t.m, table_avx2, exact_avx2};
  }
#endif
  return ks;
}

LinearKernel select_linear_kernel(const Table& t) {
  static const LinearKernel portable[] = {linear_portable<1>, linear_portable<2>, linear_portable<3>,
                                          linear_portable<4>};
  const int p = t.lin.pieces < 1 ? 1 : t.lin.pieces;
#ifdef APPROXSIM_X86
  static const LinearKernel avx512[] = {linear_avx512<1>, linear_avx512<2>, linear_avx512<3>, linear_avx512<4>};
  if (simd_level() >= kAvx512) return avx512[p - 1];
  static const LinearKernel avx2[] = {linear_avx2<1>, linear_avx2<2>, linear_avx2<3>, linear_avx2<4>};
  if (simd_level() >= kAvx2) return avx2[p - 1];
#endif
  return portable[p - 1];
}

ExpandedKernel select_expanded_kernel(int nr) {
  if (nr == kWideNR) return nullptr;  // 32-column panels are bfloat16 only
#ifdef APPROXSIM_X86
  if (nr == kNarrowNR && simd_level() >= kAvx2) return expanded8_avx2;  // one 8-lane vector per row
  if (simd_level() >= kAvx512) return expanded_avx512;
  if (simd_level() >= kAvx2) return expanded_avx2;
#endif
  return nr == kNarrowNR ? expanded_portable<kNarrowNR> : expanded_portable<kFreeNR>;
}

ExpandedBf16Kernel select_expanded_bf16_kernel(int nr) {
#ifdef APPROXSIM_X86
  if (nr == kWideNR) {
    if (simd_level() >= kAvx512) return expanded32_bf16_avx512;
    return simd_level() >= kAvx2 ? expanded32_bf16_avx2 : nullptr;
  }
  if (nr == kNarrowNR && simd_level() >= kAvx2) return expanded8_bf16_avx2;
  if (simd_level() >= kAvx512) return expanded_bf16_avx512;
  if (simd_level() >= kAvx2) return expanded_bf16_avx2;
#endif
  return nullptr;
}

ExpandBuildBf16 select_expand_build_bf16(int nr, const Table& t) {
#ifdef APPROXSIM_X86
  if (simd_level() >= kAvx2 && !t.cols16.empty())
    return nr == kNarrowNR ? expand_build_words_avx2<kNarrowNR>
           : nr == kWideNR ? expand_build_words_avx2<kWideNR>
                           : expand_build_words_avx2<kFreeNR>;
  if (simd_level() >= kAvx2)
    return nr == kNarrowNR ? expand_build_bf16_avx2<kNarrowNR>
           : nr == kWideNR ? expand_build_bf16_avx2<kWideNR>
                           : expand_build_bf16_avx2<kFreeNR>;
#endif
  (void)nr, (void)t;
  return nullptr;
}

ExpandBuild select_expand_build(int nr) {
  if (nr == kWideNR) return nullptr;  // 32-column panels are bfloat16 only
#ifdef APPROXSIM_X86
  if (simd_level() >= kAvx2) return nr == kNarrowNR ? expand_build_avx2<kNarrowNR> : expand_build_avx2<kFreeNR>;
#endif
  return nr == kNarrowNR ? expand_build_portable<kNarrowNR> : expand_build_portable<kFreeNR>;
}

}  // namespace approxsim
