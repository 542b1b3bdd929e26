// cpu_driver.h: the blocked GEMM driver: which kernels run, on which tiles, in one parallel loop.
//
// A call is a list of jobs (one GEMM each: a batch entry of a matmul, a group of a convolution),
// all with the same shapes and operand sources. The driver picks one method for them, from the
// table and the shapes:
//
//   exact     the IEEE product (fp32), FMA kernels;
//   expanded  tables up to M = 8 with many rows (where VBMI byte permutes cannot do the lookups):
//             each B panel becomes the expanded operand of every table row, and the micro-kernel
//             is broadcast-FMA over contiguous loads;
//   linear    linear-sum tables (Mitchell, MBM, L-Mul, at any M): the entry computed, not looked up;
//   lookup    any other table, and every table VBMI byte permutes can look up (M <= 7, bf16-exact): the
//             per-level gather / permute / byte-permute kernels.
//
// It cuts every job into tiles (rows, columns, or for long contractions with a small result, the
// contraction), and runs all tiles of all jobs in one parallel loop of the thread pool. The loop
// nest within a tile follows the usual blocked GEMM (Goto and van de Geijn, "Anatomy of
// high-performance matrix multiplication", ACM TOMS 2008). Every product is exactly DESIGN.md
// section 1: a panel pair whose exponent ranges fail float_domain_exact (or holding Inf/NaN) is
// computed by the exact scalar path of approx_product.h instead.
#ifndef APPROXSIM_CPU_DRIVER_H_
#define APPROXSIM_CPU_DRIVER_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu_aligned.h"
#include "cpu_kernels.h"
#include "cpu_operands.h"
#include "cpu_pool.h"

namespace approxsim {

// Block sizes of the packed loops (multiples of every MR and NR).
struct Blocking {
  int kc;  // contraction steps per packed block
  int mc;  // rows of A per packed block
  int nc;  // columns of B per packed block
};
constexpr Blocking kLookupBlocking{256, 128, 512};
constexpr int kExpandedRows = 2048;  // rows of A packed at once for an expanded panel
// Contraction steps of an expanded panel: about 256 KiB of panel (2^M rows x kc x 16 floats), in L2.

enum class Method { kExact, kExpanded, kLinear, kLookup };

// A method forced for tests and benchmarks (-1: choose; cpu_gemm.cpp). A forced method the table
// cannot take falls back to the next one (expanded -> linear -> lookup).
int forced_method();
void force_method(int method);
const char* method_name(Method method);
// The method of the calling thread's last GEMM call, for benchmarks: "expanded", "linear (transposed)", ...
void note_method(Method method, bool transposed);
const char* last_method();

// Rows from which the expanded method beats the other kernels: its panel build costs 2^M entries per
// operand of B whatever the rows, and a fixed part per call. Measured (AVX2, AMD Zen 5, 2 threads,
// GEMMs of 8..200 rows against 256..1024 columns): against the linear-sum kernel from about 48 rows
// at M = 7 and 16..32 at M = 5 and 3; against the gather kernel from 16 rows at M = 7.
inline int64_t expanded_min_rows(const Table& t) {
  return t.lin.valid ? std::max<int64_t>(24, int64_t(1) << (t.m - 1)) : 16;
}

// The method for a table and the rows and columns of the problem.
inline Method choose_method(const Table& t, int64_t rows, int64_t cols) {
  if (t.m == 0) return Method::kExact;
  const int forced = forced_method();
  if (forced >= 0) {
    if (forced == static_cast<int>(Method::kExpanded) && t.m <= kMaxExpandedBits) return Method::kExpanded;
    // expanded falls back to linear; a forced "exact" (integer tables only) to lookup
    if ((forced == static_cast<int>(Method::kExpanded) || forced == static_cast<int>(Method::kLinear)) && t.lin.valid)
      return Method::kLinear;
    return Method::kLookup;
  }
  const bool expandable = t.m <= kMaxExpandedBits && rows >= expanded_min_rows(t) && simd_level() >= kAvx2;
  // Byte-permute lookups (VBMI) beat or match the expanded operand and the linear-sum kernels (AMD
  // Zen 5, M = 3 and 7, 2 threads, against 32-column bfloat16 expanded panels: GEMM 1024^3 13.9 ms
  // against 15.5, ResNet conv forward 17.0 against 17.5, its filter gradient 21 against 30), except
  // where their 64-wide tiles would mostly pad 9 to 32 columns, which expanded panels fit (8192 rows,
  // 400 steps: 16 columns 2.97 ms against 3.55 transposed, 32 columns 3.96 against 5.33; LeNet-5's
  // conv2, 16 filters: forward 1.85 against 3.1, filter gradient 3.7 against 4.1); gathers (AVX2,
  // AVX-512) do not.
  // Not where 512-bit operations run as two halves: on AMD Zen 4 the expanded operand beats them
  // wherever it can run (2 threads, mbm7, medians of 9, three runs each: GEMM 1024^3 19.6-20.6 ms
  // against 28.0-28.9; the ResNet layer's conv trio 73.8-75.3 against 104.5-107.1; LeNet-5's step, whose
  // small convolutions keep the lookups, unchanged).
  if (byte_permute_lookups(t) && !(expandable && halved_512bit_ops()))
    return expandable && cols > kNarrowNR && cols <= kWideNR ? Method::kExpanded : Method::kLookup;
  if (expandable) return Method::kExpanded;
  if (t.lin.valid) return Method::kLinear;
  return Method::kLookup;
}

// Per-thread working memory, one for every GEMM of the thread (cpu_driver.cpp).
struct Work {  // every buffer on a cache line (the kernels read them with full-width loads)
  LineVector<float> araw, asc, braw, bsc, tile, bx;
  LineVector<int32_t> aoff, bidx32;
  LineVector<uint16_t> bidx16, bext, a16;
  LineVector<uint8_t> bidx8;
  LineVector<uint32_t> bmask;
  LineVector<uint64_t> bmask64;
  std::vector<Stats> astats, bstats;
  std::vector<float> columns;  // Y of the input gradient by columns (cpu_gemm.cpp), outside every GEMM
};
Work& scratch();

namespace detail {

// The exact scalar path for one tile (DESIGN.md section 1 through approx_product.h).
template <class ASrc, class BSrc>
void exact_tile(const ASrc& A, const BSrc& B, int64_t row0, int rows, int64_t col0, int cols, int64_t k0, int kc,
                const Table& t, int nr, float* tile) {
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      float acc = 0.0f;
      for (int k = 0; k < kc; ++k) {
        float a, b;
        if (!A.get(row0 + r, k0 + k, a) || !B.get(k0 + k, col0 + c, b)) continue;
        acc += t.m == 0 ? a * b : approxsim_mul_split(a, b, t.split.data(), t.m);
      }
      tile[r * nr + c] = acc;
    }
}

// C[r][c] is C[r * ldc + c], or C[c * ldc + r] with trans_c.
inline void add_tile(float* C, int64_t ldc, bool trans_c, int64_t row0, int rows, int64_t col0, int cols,
                     const float* tile, int nr) {
  if (!trans_c) {  // contiguous rows: vectorised
    for (int r = 0; r < rows; ++r) {
      float* dst = C + (row0 + r) * ldc + col0;
      const float* src = tile + r * nr;
      for (int c = 0; c < cols; ++c) dst[c] += src[c];
    }
    return;
  }
  for (int c = 0; c < cols; ++c) {  // the rows of a column are contiguous
    float* dst = C + row0 + (col0 + c) * ldc;
    for (int r = 0; r < rows; ++r) dst[r] += tile[r * nr + c];
  }
}

inline void zero_block(float* C, int64_t ldc, bool trans_c, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  if (trans_c) std::swap(r0, c0), std::swap(r1, c1);  // C^T's rows are C's columns
  for (int64_t r = r0; r < r1; ++r) std::fill(C + r * ldc + c0, C + r * ldc + c1, 0.0f);
}

// Converts a packed B panel (kc x nr raw operands) to the kernels' format; returns its stats.
inline Stats convert_b_panel(Method method, const KernelSet& ks, const Table& t, float* raw, int kc, int nr,
                             Work& w, size_t base, int jp) {
  Stats s;
  const int m = t.m, shift = 23 - m;
  const uint32_t imask = (1u << m) - 1;
  float* sc = w.bsc.data() + base;
  if (method == Method::kExact) {
    for (int q = 0; q < kc * nr; ++q) {
      account(bits(raw[q]), s);
      sc[q] = raw[q];
    }
  } else if (method == Method::kLinear) {
    convert_linear(raw, kc * nr, m, t.lin.v.data(), t.lin.vshift, sc, s);  // the class of each operand replaces it
  } else if (ks.bformat == kBytes8) {
    for (int k = 0; k < kc; ++k)
      convert_b_bytes8(raw + k * nr, m, w.bidx8.data() + base + k * nr, w.bext.data() + base + k * nr,
                       w.bmask64.data() + size_t(jp) * kLookupBlocking.kc + k, s);
  } else if (ks.bformat == kPermute16) {
    uint16_t* idx = w.bidx16.data() + base;
    uint32_t* msk = w.bmask.data() + size_t(jp) * kLookupBlocking.kc;
    for (int k = 0; k < kc; ++k) {
      uint32_t mk = 0;
      for (int c = 0; c < nr; ++c) {
        const uint32_t u = bits(raw[k * nr + c]);
        account(u, s);
        const uint32_t j = (u >> shift) & imask;
        const int pos = permute_pos(c);
        idx[k * nr + pos] = static_cast<uint16_t>(j);
        mk |= ((j >> 6) & 1u) << pos;
        sc[k * nr + c] = scale_of(u);
      }
      msk[k] = mk;
    }
  } else {
    int32_t* idx = w.bidx32.data() + base;
    for (int q = 0; q < kc * nr; ++q) {
      const uint32_t u = bits(raw[q]);
      account(u, s);
      idx[q] = static_cast<int32_t>((u >> shift) & imask);
      sc[q] = scale_of(u);
    }
  }
  return s;
}

// Rows r0..r1, columns c0..c1 of C, contraction k0..k1: the exact, linear and lookup methods.
template <class ASrc, class BSrc>
void gemm_task(const ASrc& A, const BSrc& B, float* C, int64_t ldc, bool trans_c, int64_t r0, int64_t r1, int64_t c0,
               int64_t c1, int64_t k0, int64_t k1, const Table& t, Method method, Work& w) {
  const KernelSet ks = method == Method::kLinear ? KernelSet{kFreeMR, kFreeNR, kGather32, t.m, nullptr, nullptr}
                                                 : select_kernels(t);
  const LinearKernel linear = method == Method::kLinear ? select_linear_kernel(t) : nullptr;
  const int mr = ks.mr, nr = ks.nr, m = t.m;
  const Blocking bl = kLookupBlocking;
  zero_block(C, ldc, trans_c, r0, r1, c0, c1);
  if (k1 <= k0) return;
  w.araw.resize(size_t(bl.mc) * bl.kc);
  w.asc.resize(size_t(bl.mc) * bl.kc);
  w.aoff.resize(size_t(bl.mc) * bl.kc);
  w.astats.resize(bl.mc / mr + 1);
  w.braw.resize(size_t(bl.nc) * bl.kc);
  w.bsc.resize(size_t(bl.nc) * bl.kc);
  w.bidx32.resize(size_t(bl.nc) * bl.kc);
  w.bidx16.resize(size_t(bl.nc) * bl.kc);
  w.bmask.resize(size_t(bl.nc / nr + 1) * bl.kc);
  if (ks.bformat == kBytes8) {
    w.bidx8.resize(size_t(bl.nc) * bl.kc);
    w.bext.resize(size_t(bl.nc) * bl.kc);
    w.bmask64.resize(size_t(bl.nc / nr + 1) * bl.kc);
  }
  w.bstats.resize(bl.nc / nr + 1);
  w.tile.resize(size_t(mr) * nr);

  for (int64_t jc = c0; jc < c1; jc += bl.nc) {
    const int nc = static_cast<int>(std::min<int64_t>(bl.nc, c1 - jc));
    const int npan = (nc + nr - 1) / nr;
    for (int64_t pc = k0; pc < k1; pc += bl.kc) {
      const int kc = static_cast<int>(std::min<int64_t>(bl.kc, k1 - pc));
      for (int jp = 0; jp < npan; ++jp) {  // pack B: npan panels of kc x nr
        const size_t base = size_t(jp) * bl.kc * nr;
        float* raw = w.braw.data() + base;
        B.pack(pc, kc, jc + int64_t(jp) * nr, std::min(nr, nc - jp * nr), raw, nr);
        w.bstats[jp] = convert_b_panel(method, ks, t, raw, kc, nr, w, base, jp);
      }
      for (int64_t ic = r0; ic < r1; ic += bl.mc) {
        const int mc = static_cast<int>(std::min<int64_t>(bl.mc, r1 - ic));
        const int mpan = (mc + mr - 1) / mr;
        // Pack the block's rows (row r at r * kc: panel ip holds rows ip*mr .. ip*mr + mr - 1).
        A.pack(ic, mc, pc, kc, w.araw.data(), bl.kc);
        for (int r = mc; r < mpan * mr; ++r) std::memset(w.araw.data() + size_t(r) * bl.kc, 0, sizeof(float) * kc);
        for (int ip = 0; ip < mpan; ++ip) {
          const size_t base = size_t(ip) * bl.kc * mr;
          Stats s;
          for (int r = 0; r < mr; ++r) {
            const size_t row = base + size_t(r) * bl.kc;
            if (method == Method::kLinear) {  // the class of each operand replaces it in place
              convert_linear(w.araw.data() + row, kc, m, t.lin.u.data(), t.lin.ushift, w.asc.data() + row, s);
            } else {
              convert_a(w.araw.data() + row, kc, m, ks.aoff_shift, w.aoff.data() + row, w.asc.data() + row, s);
            }
          }
          w.astats[ip] = s;
        }
        for (int jp = 0; jp < npan; ++jp) {
          const size_t bbase = size_t(jp) * bl.kc * nr;
          const int cols = std::min(nr, nc - jp * nr);
          const int64_t col0 = jc + int64_t(jp) * nr;
          for (int ip = 0; ip < mpan; ++ip) {
            const size_t abase = size_t(ip) * bl.kc * mr;
            const int rows = std::min(mr, mc - ip * mr);
            const int64_t row0 = ic + int64_t(ip) * mr;
            float* tile = w.tile.data();
            const Stats& as = w.astats[ip];
            const Stats& bs = w.bstats[jp];
            const bool fast = method == Method::kExact ? fma_safe(as, bs) : float_domain_exact(t, as, bs);
            if (!fast) {
              exact_tile(A, B, row0, rows, col0, cols, pc, kc, t, nr, tile);
            } else if (method == Method::kExact) {
              ks.exact(kc, bl.kc, w.asc.data() + abase, w.bsc.data() + bbase, tile);
            } else if (method == Method::kLinear) {
              linear(kc, bl.kc, w.araw.data() + abase, w.asc.data() + abase, w.braw.data() + bbase,
                     w.bsc.data() + bbase, t.lin, tile);
            } else {
              const void* bidx = w.bidx32.data() + bbase;
              const void* bext = nullptr;
              const void* bmask = w.bmask.data() + size_t(jp) * bl.kc;
              if (ks.bformat == kPermute16) {
                bidx = w.bidx16.data() + bbase;
              } else if (ks.bformat == kBytes8) {
                bidx = w.bidx8.data() + bbase;
                bext = w.bext.data() + bbase;
                bmask = w.bmask64.data() + size_t(jp) * bl.kc;
              }
              ks.table(kc, bl.kc, w.aoff.data() + abase, w.asc.data() + abase, bidx, bext, bmask,
                       w.bsc.data() + bbase, t, tile);
            }
            add_tile(C, ldc, trans_c, row0, rows, col0, cols, tile, nr);
          }
        }
      }
    }
  }
}

// The same tile by the expanded method. For a chunk of rows, A is packed once for a long stretch of
// the contraction (raw floats: the kernel reads the panel row and the scale from their bits); then
// for each 16-column panel of B (8 columns for a tile of at most 8), each contraction block is
// expanded and swept by every row of the chunk, the sums staying in a chunk-sized accumulator (in
// cache) until the panel is done.
template <class ASrc, class BSrc>
void gemm_task_expanded(const ASrc& A, const BSrc& B, float* C, int64_t ldc, bool trans_c, int64_t r0, int64_t r1,
                        int64_t c0, int64_t c1, int64_t k0, int64_t k1, const Table& t, Work& w) {
  constexpr int mr = kFreeMR;
  // 8-column panels for narrow outputs, 32-column ones where there is a wide bfloat16 kernel.
  const bool wide = c1 - c0 > kFreeNR && t.bf16_exact && select_expanded_bf16_kernel(kWideNR) != nullptr;
  const int nr = c1 - c0 <= kNarrowNR ? kNarrowNR : wide ? kWideNR : kFreeNR;
  const int p = t.prow, side = 1 << p, kcx = expanded_kc(t);  // panel rows: one per group of equal rows
  const ExpandedKernel kernel = select_expanded_kernel(nr);  // none at 32 columns: bfloat16 only
  const ExpandBuild build = select_expand_build(nr);
  // bfloat16 panel entries where the table allows them (half the panel, half the L2 traffic).
  const ExpandedBf16Kernel kernel16 = t.bf16_exact ? select_expanded_bf16_kernel(nr) : nullptr;
  const ExpandBuildBf16 build16 = kernel16 != nullptr ? select_expand_build_bf16(nr, t) : nullptr;
  zero_block(C, ldc, trans_c, r0, r1, c0, c1);
  if (k1 <= k0) return;
  // A stretch of the contraction (a multiple of the block) and a chunk of rows: about 8 MiB of A.
  const int64_t stretch = std::min<int64_t>(k1 - k0, int64_t(16384) / kcx * kcx);
  const int64_t chunk_rows = std::max<int64_t>(mr, std::min<int64_t>((int64_t(2) << 20) / stretch, 4096) / mr * mr);
  const int rc = static_cast<int>(std::min<int64_t>(chunk_rows, (r1 - r0 + mr - 1) / mr * mr));
  const int ks = static_cast<int>(stretch);
  const int nblk = (ks + kcx - 1) / kcx;
  const int pack_panels = std::max(1, (32 * 1024) / (ks * mr));  // about 128 KiB of raw floats at a time
  w.araw.resize(size_t(pack_panels) * mr * ks);
  // Block-major: block b of row panel ip at (b * panels + ip) * kcx * mr; +16: the kernels decode 16 at a time.
  w.a16.resize(size_t(nblk) * kcx * rc + 16);
  w.astats.resize(size_t(rc / mr + 1) * nblk);
  w.braw.resize(size_t(kcx) * nr);
  w.bx.resize(size_t(side) * kcx * nr + 16);
  float* const bx = w.bx.data();  // on a cache line, so each row of the panel is in one line
  w.asc.resize(size_t(rc) * nr);  // the chunk's accumulators
  w.tile.resize(size_t(mr) * nr);
  for (int64_t pk = k0; pk < k1; pk += ks) {
    const int klen = static_cast<int>(std::min<int64_t>(ks, k1 - pk));
    for (int64_t ic = r0; ic < r1; ic += rc) {
      const int mc = static_cast<int>(std::min<int64_t>(rc, r1 - ic));
      const int mpan = (mc + mr - 1) / mr;
      // Two-byte operands and stats, once for every column panel; packed a few panels at a time, so
      // that the raw floats stay in cache.
      for (int p0 = 0; p0 < mpan; p0 += pack_panels) {
        const int p1 = std::min(mpan, p0 + pack_panels), real = std::min(mc, p1 * mr) - p0 * mr;
        A.pack(ic + int64_t(p0) * mr, real, pk, klen, w.araw.data(), ks);
        for (int r = real; r < (p1 - p0) * mr; ++r)
          std::memset(w.araw.data() + size_t(r) * ks, 0, sizeof(float) * klen);
        for (int ip = p0; ip < p1; ++ip)
          for (int b = 0; b * kcx < klen; ++b) {
            Stats s;
            const int kc = std::min(kcx, klen - b * kcx);
            uint16_t* dst = w.a16.data() + (size_t(b) * mpan + ip) * kcx * mr;
            compact_a4(w.araw.data() + size_t(ip - p0) * mr * ks + size_t(b) * kcx, ks, kc, dst, s);
            w.astats[size_t(ip) * nblk + b] = s;
          }
      }
      for (int64_t col0 = c0; col0 < c1; col0 += nr) {
        const int cols = static_cast<int>(std::min<int64_t>(nr, c1 - col0));
        float* acc = w.asc.data();
        std::memset(acc, 0, sizeof(float) * size_t(mpan) * mr * nr);
        for (int b = 0; b * kcx < klen; ++b) {
          const int kc = std::min(kcx, klen - b * kcx);
          const int64_t kb = pk + int64_t(b) * kcx;
          B.pack(kb, kc, col0, cols, w.braw.data(), nr);
          Stats bs;
          if (kernel16 != nullptr) {
            build16(w.braw.data(), kc, t, reinterpret_cast<uint16_t*>(bx), bs);
          } else {
            build(w.braw.data(), kc, t, bx, bs);
          }
          const uint16_t* ablock = w.a16.data() + size_t(b) * mpan * kcx * mr;
          for (int ip = 0; ip < mpan; ++ip) {
            float* a = acc + size_t(ip) * mr * nr;
            if (float_domain_exact(t, w.astats[size_t(ip) * nblk + b], bs)) {
              if (kernel16 != nullptr) {
                kernel16(kc, ablock + size_t(ip) * kcx * mr, p, reinterpret_cast<const uint16_t*>(bx), a);
              } else {
                kernel(kc, ablock + size_t(ip) * kcx * mr, p, bx, a);
              }
            } else {
              float* tile = w.tile.data();
              exact_tile(A, B, ic + int64_t(ip) * mr, std::min(mr, mc - ip * mr), col0, cols, kb, kc, t, nr, tile);
              for (int q = 0; q < mr * nr; ++q) a[q] += tile[q];
            }
          }
        }
        add_tile(C, ldc, trans_c, ic, mc, col0, cols, acc, nr);
      }
    }
  }
}

}  // namespace detail

// One GEMM of a call: C[M, N] = A (*) B (see cpu_operands.h for the sources).
template <class ASrc, class BSrc>
struct Job {
  ASrc A;
  BSrc B;
  float* C;
  int64_t ldc;
  bool trans_c;
};

// Runs every job (same M, N, K) on up to `threads` threads: all their tiles in one parallel loop.
template <class ASrc, class BSrc>
void run_jobs(const std::vector<Job<ASrc, BSrc>>& jobs, int64_t M, int64_t N, int64_t K, const Table& t, int threads) {
  if (jobs.empty() || M <= 0 || N <= 0) return;
  const int64_t njobs = static_cast<int64_t>(jobs.size());
  const int64_t work = njobs * M * N * std::max<int64_t>(K, 1);
  if (work < (int64_t(1) << 16)) threads = 1;
  const int64_t want = threads > 1 ? int64_t(4) * threads : 1;  // tiles wanted, all jobs together
  const int64_t per_job = std::max<int64_t>(1, (want + njobs - 1) / njobs);
  // Split the contraction for long ones with a small result (filter gradients), each tile summing
  // into its own copy of C (the order of the sums is unspecified): no two threads pack the same B.
  const Method whole = choose_method(t, M, N);
  const int64_t unit = whole == Method::kExpanded ? expanded_kc(t) : kLookupBlocking.kc;
  // An expanded panel serves every row of its tile: with few column panels and a long contraction
  // (filter gradients), expanded tiles are split by the contraction, so that no panel is built twice.
  const int64_t col_panels = (N + 15) / 16;
  const bool long_k = K >= 8 * unit * per_job && njobs * per_job * M * N <= (int64_t(1) << 24);
  const bool split_k = whole == Method::kExpanded
                           ? col_panels < per_job && long_k
                           : M <= kLookupBlocking.mc && N <= 2 * kLookupBlocking.mc && long_k;
  int64_t tasks_k = 1, tasks_m = 1, tasks_n = 1;
  if (per_job > 1 && split_k) {
    tasks_k = std::min<int64_t>(per_job, K / (4 * unit));
  } else if (per_job > 1 && whole == Method::kExpanded) {
    // A tile packs A for its rows and builds the panels of its columns: split by rows where packing A
    // again for every column tile would cost more than building the panels again for every row tile
    // (M x K against 2^M x K x N operands: convolutions over many pixels), else by column panels, and
    // by rows as well only where those are too few for the threads and each row tile keeps enough rows
    // to pay for building the panels again (AVX2, 2 threads, an MLP's batch of 128 against 100 units:
    // 1.2 -> 0.36 ms; the ResNet-layer forward stays split by rows: 26 ms, 37 by columns).
    if (M >= (int64_t(1) << t.prow) * N) {
      tasks_m = std::min<int64_t>(per_job, std::max<int64_t>(1, M / 16));
    } else {
      tasks_n = std::min<int64_t>(per_job, col_panels);
      const int64_t want_m = (per_job + tasks_n - 1) / tasks_n;
      tasks_m = std::max<int64_t>(1, std::min<int64_t>(want_m, M / (8 * expanded_min_rows(t))));
    }
  } else if (per_job > 1) {
    if (M < N) {
      tasks_n = std::min<int64_t>(per_job, col_panels);
    } else {
      tasks_m = std::min<int64_t>(per_job, std::max<int64_t>(1, M / 16));
    }
  }
  const int64_t tiles = tasks_m * tasks_n * tasks_k;
  std::vector<float> partial(tasks_k > 1 ? size_t(njobs) * tasks_k * M * N : 0);
  const int64_t k_steps = (K + unit - 1) / unit;
  ThreadPool::instance().parallel_for(static_cast<int>(njobs * tiles), threads, [&](int task) {
    const Job<ASrc, BSrc>& job = jobs[task / tiles];
    const int64_t tile = task % tiles, tm = tile / (tasks_n * tasks_k), tn = (tile / tasks_k) % tasks_n,
                  tk = tile % tasks_k;
    const int64_t r0 = M * tm / tasks_m / 16 * 16, r1 = tm + 1 == tasks_m ? M : M * (tm + 1) / tasks_m / 16 * 16;
    const int64_t c0 = N * tn / tasks_n / 16 * 16, c1 = tn + 1 == tasks_n ? N : N * (tn + 1) / tasks_n / 16 * 16;
    const int64_t k0 = std::min(K, k_steps * tk / tasks_k * unit), k1 = std::min(K, k_steps * (tk + 1) / tasks_k * unit);
    if (r0 >= r1 || c0 >= c1) return;
    float* C = job.C;
    int64_t ldc = job.ldc;
    bool trans_c = job.trans_c;
    if (tasks_k > 1) {
      C = partial.data() + (size_t(task / tiles) * tasks_k + tk) * M * N;
      ldc = N;
      trans_c = false;
    }
    Work& w = scratch();
    if (whole == Method::kExpanded) {  // one method for every tile: the sums do not depend on the split
      detail::gemm_task_expanded(job.A, job.B, C, ldc, trans_c, r0, r1, c0, c1, k0, k1, t, w);
    } else {
      detail::gemm_task(job.A, job.B, C, ldc, trans_c, r0, r1, c0, c1, k0, k1, t, whole, w);
    }
  });
  if (tasks_k > 1) {
    for (int64_t j = 0; j < njobs; ++j) {
      const Job<ASrc, BSrc>& job = jobs[j];
      const int64_t rs = job.trans_c ? 1 : job.ldc, cs = job.trans_c ? job.ldc : 1;
      for (int64_t r = 0; r < M; ++r)
        for (int64_t c = 0; c < N; ++c) {
          float acc = 0.0f;
          for (int64_t q = 0; q < tasks_k; ++q) acc += partial[((size_t(j) * tasks_k + q) * M + r) * N + c];
          job.C[r * rs + c * cs] = acc;
        }
    }
  }
}

// Multiply-adds of an M x N result computed in whole mr x nr tiles (padding included).
inline int64_t padded_products(int64_t M, int64_t N, int mr, int nr) {
  return (M + mr - 1) / mr * mr * ((N + nr - 1) / nr * nr);
}

// Whether C^T = B^T (*)' A^T computes an M x N result faster than C = A (*) B: where it takes a faster
// method (the expanded one needs many rows), or else pads less. With few columns (most of each
// 16-wide panel would be padding for the linear-sum and lookup kernels: depthwise convolutions) and
// more rows, always. Where the lookup method runs either way, whenever its tiles waste at least a
// quarter less: the byte-permute kernel's tiles are 64 columns wide, so a LeNet layer's 6 or 16
// filters fill a tenth or a quarter of them (AMD Zen 5, 2 threads, batch 128, 14 x 14 x 6 -> 16,
// 5 x 5: forward 5.2 -> 2.3 ms, filter gradient 8.3 -> 3.4, with the transposed packers).
inline bool transposed_is_faster(const Table& t, int64_t M, int64_t N) {
  // Not where the few rows of C^T would lose the expanded method: its panels, even 6 columns of 16
  // full, beat the linear-sum and gather kernels (AVX2, AMD Zen 5, 2 threads, LeNet-5's batch 128:
  // 28 x 28 x 1 -> 6 forward 6.1 -> 3.6 ms, 14 x 14 x 6 -> 16 input gradient 17.2 -> 10.2).
  const Method normal = choose_method(t, M, N), flipped = choose_method(t, N, M);
  if (normal == Method::kExpanded && flipped != Method::kExpanded) return false;
  // And where only C^T has the rows for it (a batch of 128 against 300 units: MLP 784-300-100-10, AVX2,
  // 2 threads: forward 784 -> 300 2.5 -> 1.8 ms, input gradient 2.2 -> 1.9).
  if (flipped == Method::kExpanded && normal != Method::kExpanded) return true;
  // Either way expanded: its panels are built per column, 2^M entries per operand, so the side with fewer
  // columns (MLP 784-300-100-10, batch 128, forward 784 -> 300: 300 rows of C^T against 128 columns);
  // few columns take its 8-column panels.
  if (normal == Method::kExpanded) return N > M;
  if (2 * N <= kFreeNR && M > N) return true;
  if (normal != Method::kLookup || flipped != Method::kLookup) return false;
  const KernelSet ks = select_kernels(t);
  return 4 * padded_products(N, M, ks.mr, ks.nr) <= 3 * padded_products(M, N, ks.mr, ks.nr);
}

// C = A (*) B for every job, or C^T = B^T (*)' A^T where that is faster
// (transposed_is_faster), (*)' looking up the transposed table: the products are the same,
// T'[j][i] = T[i][j].
template <class ASrc>
void gemm(const std::vector<Job<ASrc, detail::GeneralB>>& jobs, int64_t M, int64_t N, int64_t K, const Table& t,
          int threads) {
  if (jobs.empty() || M <= 0 || N <= 0) return;
  const bool transpose = transposed_is_faster(t, M, N);
  note_method(transpose ? choose_method(t, N, M) : choose_method(t, M, N), transpose);
  if (transpose) {
    using TJob = Job<detail::TransposedB, detail::TransposedA<ASrc>>;
    std::vector<TJob> tjobs;
    tjobs.reserve(jobs.size());
    for (const auto& j : jobs) tjobs.push_back(TJob{detail::TransposedB{j.B}, detail::TransposedA<ASrc>{j.A}, j.C,
                                                    j.ldc, !j.trans_c});
    run_jobs(tjobs, N, M, K, t.transposed(), threads);
  } else {
    run_jobs(jobs, M, N, K, t, threads);
  }
}

}  // namespace approxsim

#endif  // APPROXSIM_CPU_DRIVER_H_
