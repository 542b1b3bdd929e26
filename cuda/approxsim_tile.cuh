/*
 * approxsim_tile.cuh: the shared-memory-tiled, register-blocked contraction that
 * every approxsim kernel instantiates:  out[r, c] (+)= sum_k A(r, k) (*) B(k, c).
 *
 * A "loader" says where A(r, k), B(k, c) and out[r, c] live (a strided matrix for
 * matmul, an implicit im2col view of NHWC/HWIO tensors for the convolutions, so
 * no patch matrix is ever written to global memory) and whether an element is
 * present at all (an input-gradient tap that falls between strides is absent:
 * it contributes no product, not even 0 (*) w).  A "product" policy says how
 * operands are staged in shared memory and multiplied: exact fp32 (FMA), the
 * fast table product with the table in shared or read-only global memory, or the
 * generic header path.  See approxsim_codes.cuh for the arithmetic.
 *
 * Block: 256 threads as 16 x 16; block tile BM x BN, thread tile TM x TN with
 * rows ty + 16 i and columns tx + 16 j (conflict-free shared reads, coalesced
 * stores); k-tiles of BK = 8.  While a k-tile is staged, the block gathers the
 * exponent range of its A and of its B operands (shared-memory atomics) and
 * whether any is Inf or NaN; the policy's fast(...) decides from them, with the
 * predicates of approx_product.h that the CPU kernels use for their panels, whether
 * the fast path is exact for every pair of the tile.  Other tiles are computed by
 * the exact path from the raw floats (a block-uniform branch).
 *
 * Split-K: the grid's z dimension is (batch or group) x splits; with splits > 1
 * each block adds its partial sums to a zeroed output with atomicAdd.
 */
#ifndef APPROXSIM_TILE_CUH_
#define APPROXSIM_TILE_CUH_

#include "approxsim_codes.cuh"

#define APPROXSIM_THREADS 256
#define APPROXSIM_BK 8
/* Blocks per SM the compiler must fit (caps registers at 65536 / (256 * n)): 2 gives the
 * 128 x 128 tiles 128 registers (small spills on sm_80) and twice the warps to hide the
 * table loads.  A tuning knob: the backend passes $APPROXSIM_CUDA_MIN_BLOCKS. */
#ifndef APPROXSIM_MIN_BLOCKS
#define APPROXSIM_MIN_BLOCKS 2
#endif

/* ---------------------------------------------------------------- products */
/*
 * A product policy P has
 *   Pack          what shared memory holds per staged operand (fast path);
 *   setup(...)    table placement (copies it to shared memory when it lives there);
 *   fast(a, b)    whether the fast path is exact for a tile whose A and B operands have
 *                 the exponent ranges a and b (approx_product.h);
 *   pack_a/b(x)   the fast-path form of a first / second operand;
 *   mac(acc,a,b)  acc plus the fast-path product;
 *   exact(a,b)    the product of raw floats, every special case included.
 */

struct ProdFp32 {
  typedef float Pack;
  __device__ void setup(const void*, int, int, int, unsigned char*) {}
  __device__ int fast(approxsim_range a, approxsim_range b) const { return approxsim_fma_exact(a, b); }
  __device__ Pack pack_a(float x) const { return x; }
  __device__ Pack pack_b(float x) const { return x; }
  __device__ float mac(float acc, Pack a, Pack b) const { return fmaf(a, b, acc); }
  __device__ float exact(float a, float b) const { return a * b; }
};

struct approxsim_fast_pack {
  approxsim_u32 off; /* byte offset of the operand's table row or column */
  float scale;       /* sign * 2^exponent, or +-0 */
};

/* A table of positive normal floats: in shared memory (SMEM) or read-only global memory, as float
 * words or (HALF) as their top 16 bits.  The fast path is the product of approxsim_codes.cuh. */
template <bool SMEM, bool HALF>
struct ProdTable {
  typedef approxsim_fast_pack Pack;
  const unsigned char* base;
  int m, t_emin, t_emax;
  __device__ void setup(const void* table, int m_, int t_emin_, int t_emax_, unsigned char* smem) {
    m = m_;
    t_emin = t_emin_;
    t_emax = t_emax_;
    base = (const unsigned char*)table;
    if (SMEM) {
      int words = (1 << (2 * m_)) / (HALF ? 2 : 1);  /* 32-bit words to copy */
      const approxsim_u32* g = (const approxsim_u32*)table;
      approxsim_u32* s = (approxsim_u32*)smem;
      for (int i = threadIdx.x; i < words; i += APPROXSIM_THREADS) s[i] = g[i];
      base = smem;
    }
  }
  __device__ int fast(approxsim_range a, approxsim_range b) const {
    return approxsim_float_domain_exact(t_emin, t_emax, a, b);
  }
  __device__ Pack pack_a(float x) const {
    Pack p = {approxsim_fast_offset(x, m, m + (HALF ? 1 : 2)), approxsim_fast_scale(x)};
    return p;
  }
  __device__ Pack pack_b(float x) const {
    Pack p = {approxsim_fast_offset(x, m, HALF ? 1 : 2), approxsim_fast_scale(x)};
    return p;
  }
  __device__ float entry(approxsim_u32 off) const {
    if (HALF) {
      const unsigned short* q = (const unsigned short*)(base + off);
      return __uint_as_float((approxsim_u32)(SMEM ? *q : __ldg(q)) << 16);
    }
    const float* q = (const float*)(base + off);
    return SMEM ? *q : __ldg(q);
  }
  __device__ float mac(float acc, Pack a, Pack b) const {
    return fmaf(entry(a.off + b.off), a.scale * b.scale, acc);  /* T * (s(a) * s(b)): exact on fast tiles */
  }
  __device__ float exact(float a, float b) const {
    return HALF ? approxsim_exact_packed(a, b, 0, (const unsigned short*)base, m)
                : approxsim_exact_packed(a, b, (const approxsim_u32*)base, 0, m);
  }
};

typedef ProdTable<true, true> ProdS16;    /* M <= 7, entries exact in 16 bits: 32 KiB of shared memory */
typedef ProdTable<true, false> ProdS32;   /* M <= 6: 16 KiB of shared memory */
typedef ProdTable<false, false> ProdG32;  /* M <= 11: read-only global memory (L2/L1 cached) */

/* Any finite table (zero, negative or subnormal entries too): the header's approxsim_mul_split. */
struct ProdGeneric {
  typedef float Pack;
  const approxsim_entry* entries;
  int m;
  __device__ void setup(const void* table, int m_, int, int, unsigned char*) {
    entries = (const approxsim_entry*)table;
    m = m_;
  }
  __device__ int fast(approxsim_range a, approxsim_range b) const { return !a.special && !b.special; }
  __device__ Pack pack_a(float x) const { return x; }
  __device__ Pack pack_b(float x) const { return x; }
  __device__ float mac(float acc, Pack a, Pack b) const { return acc + approxsim_mul_split(a, b, entries, m); }
  __device__ float exact(float a, float b) const { return approxsim_mul_split(a, b, entries, m); }
};

/* ---------------------------------------------------------------- the tile loop */

/* Block-wide exponent ranges of a k-tile: shared ints {a.emin, a.emax, b.emin, b.emax} in two
 * slots (k-tiles alternate, so a slot is reset while the other is in use). */
#define APPROXSIM_RANGE_WORDS 8

__device__ __forceinline__ void approxsim_range_reset(int* slot) {
  slot[0] = APPROXSIM_RANGE_EMPTY_MIN;
  slot[1] = APPROXSIM_RANGE_EMPTY_MAX;
  slot[2] = APPROXSIM_RANGE_EMPTY_MIN;
  slot[3] = APPROXSIM_RANGE_EMPTY_MAX;
}

__device__ __forceinline__ void approxsim_range_publish(int* lo, int* hi, approxsim_range r) {
  if (r.emin <= r.emax) {
    atomicMin(lo, r.emin);
    atomicMax(hi, r.emax);
  }
}

template <int BM, int BN, class P, class L>
__device__ __forceinline__ void approxsim_tiled(const L& ld, const void* table, int m, int t_emin, int t_emax,
                                                int k_begin, int k_end, int atomic) {
  const int TM = BM / 16, TN = BN / 16, BK = APPROXSIM_BK;
  typedef typename P::Pack Pack;
  extern __shared__ __align__(16) unsigned char approxsim_smem[];
  int* ranges = (int*)approxsim_smem;  /* [2][4], APPROXSIM_RANGE_WORDS ints */
  Pack* As = (Pack*)(approxsim_smem + APPROXSIM_RANGE_WORDS * sizeof(int));  /* [BK][BM] */
  Pack* Bs = As + BK * BM;           /* [BK][BN] */
  P prod;
  prod.setup(table, m, t_emin, t_emax, (unsigned char*)(Bs + BK * BN));

  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int r0 = blockIdx.x * BM, c0 = blockIdx.y * BN;
  if (tid == 0) approxsim_range_reset(ranges);
  __syncthreads();
  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

  int slot = 0;
  for (int k0 = k_begin; k0 < k_end; k0 += BK, slot ^= 1) {
    int* cur = ranges + 4 * slot;
    approxsim_range ra = approxsim_range_empty(), rb = approxsim_range_empty();
#pragma unroll
    for (int e = tid; e < BM * BK; e += APPROXSIM_THREADS) {
      int r, kk;
      if (ld.a_kfast) { r = e / BK; kk = e % BK; } else { kk = e / BM; r = e % BM; }
      float v = 0.0f;
      int k = k0 + kk;
      if (r0 + r < ld.rows && k < k_end && !ld.a(r0 + r, k, &v)) v = 0.0f;  /* absent: 0 */
      approxsim_range_add(&ra, approxsim_f2u(v));
      As[kk * BM + r] = prod.pack_a(v);
    }
#pragma unroll
    for (int e = tid; e < BN * BK; e += APPROXSIM_THREADS) {
      int c, kk;
      if (ld.b_kfast) { c = e / BK; kk = e % BK; } else { kk = e / BN; c = e % BN; }
      float v = 0.0f;
      int k = k0 + kk;
      if (c0 + c < ld.cols && k < k_end && !ld.b(k, c0 + c, &v)) v = 0.0f;
      approxsim_range_add(&rb, approxsim_f2u(v));
      Bs[kk * BN + c] = prod.pack_b(v);
    }
    approxsim_range_publish(cur, cur + 1, ra);
    approxsim_range_publish(cur + 2, cur + 3, rb);
    int special = __syncthreads_or(ra.special | rb.special);
    approxsim_range ta, tb;
    ta.emin = cur[0];
    ta.emax = cur[1];
    tb.emin = cur[2];
    tb.emax = cur[3];
    ta.special = tb.special = special;
    if (tid == 0) approxsim_range_reset(ranges + 4 * (slot ^ 1));  /* read by all before the last barrier */
    if (prod.fast(ta, tb)) {
      /* Fast path: exact for every pair of this tile (an absent element, staged as 0, adds exactly +-0). */
#pragma unroll
      for (int kk = 0; kk < BK; ++kk) {
        Pack a[TM], b[TN];
#pragma unroll
        for (int i = 0; i < TM; ++i) a[i] = As[kk * BM + ty + 16 * i];
#pragma unroll
        for (int j = 0; j < TN; ++j) b[j] = Bs[kk * BN + tx + 16 * j];
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
          for (int j = 0; j < TN; ++j) acc[i][j] = prod.mac(acc[i][j], a[i], b[j]);
      }
    } else {
      /* Exact path (rare): raw floats again from global memory, absent elements skipped,
       * the header's special cases. */
#pragma unroll 1
      for (int kk = 0; kk < BK && k0 + kk < k_end; ++kk) {
        int k = k0 + kk;
        float a[TM], b[TN];
        int pa[TM], pb[TN];
#pragma unroll
        for (int i = 0; i < TM; ++i) {
          int r = r0 + ty + 16 * i;
          pa[i] = r < ld.rows && ld.a(r, k, &a[i]);
        }
#pragma unroll
        for (int j = 0; j < TN; ++j) {
          int c = c0 + tx + 16 * j;
          pb[j] = c < ld.cols && ld.b(k, c, &b[j]);
        }
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
          for (int j = 0; j < TN; ++j)
            if (pa[i] && pb[j]) acc[i][j] += prod.exact(a[i], b[j]);
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < TM; ++i) {
    int r = r0 + ty + 16 * i;
    if (r >= ld.rows) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      int c = c0 + tx + 16 * j;
      if (c >= ld.cols) continue;
      float* p = ld.out + ld.out_offset(r, c);
      if (atomic) atomicAdd(p, acc[i][j]); else *p = acc[i][j];
    }
  }
}

/* Bytes of dynamic shared memory a kernel needs (mirrored in approxsim/backends/cuda.py):
 *   ranges: APPROXSIM_RANGE_WORDS * 4;  tiles: BK * (BM + BN) * sizeof(Pack);
 *   table (SMEM only): 2^(2M) * (HALF ? 2 : 4). */

/*
 * Kernel definitions for every product policy and the two tile sizes:
 *   approxsim_<op>_<prod>_<size>, prod in fp32 s16 s32 g32 gen, size L (128 x 128) or S (64 x 64).
 * OP_BODY(P, BM, BN) is the body of the kernel for one policy and size; OP_PARAMS its parameter list.
 */
#define APPROXSIM_KERNEL(op, name, P, BM, BN)                                                   \
  extern "C" __global__ void __launch_bounds__(APPROXSIM_THREADS, APPROXSIM_MIN_BLOCKS) approxsim_##op##_##name( \
      APPROXSIM_PARAMS_##op) {                                                                  \
    APPROXSIM_BODY_##op(P, BM, BN)                                                              \
  }

/*
 * The policies a module defines: all of them, or only those named by -DAPPROXSIM_ONLY_<prod>
 * (the backend compiles one policy per module, so that first use compiles only what runs).
 */
#if !defined(APPROXSIM_ONLY_fp32) && !defined(APPROXSIM_ONLY_s16) && !defined(APPROXSIM_ONLY_s32) && \
    !defined(APPROXSIM_ONLY_g32) && !defined(APPROXSIM_ONLY_gen)
#define APPROXSIM_ONLY_fp32
#define APPROXSIM_ONLY_s16
#define APPROXSIM_ONLY_s32
#define APPROXSIM_ONLY_g32
#define APPROXSIM_ONLY_gen
#endif

#define APPROXSIM_SIZES(op, name, P)        \
  APPROXSIM_KERNEL(op, name##_L, P, 128, 128) \
  APPROXSIM_KERNEL(op, name##_S, P, 64, 64)

#ifdef APPROXSIM_ONLY_fp32
#define APPROXSIM_K_fp32(op) APPROXSIM_SIZES(op, fp32, ProdFp32)
#else
#define APPROXSIM_K_fp32(op)
#endif
#ifdef APPROXSIM_ONLY_s16
#define APPROXSIM_K_s16(op) APPROXSIM_SIZES(op, s16, ProdS16)
#else
#define APPROXSIM_K_s16(op)
#endif
#ifdef APPROXSIM_ONLY_s32
#define APPROXSIM_K_s32(op) APPROXSIM_SIZES(op, s32, ProdS32)
#else
#define APPROXSIM_K_s32(op)
#endif
#ifdef APPROXSIM_ONLY_g32
#define APPROXSIM_K_g32(op) APPROXSIM_SIZES(op, g32, ProdG32)
#else
#define APPROXSIM_K_g32(op)
#endif
#ifdef APPROXSIM_ONLY_gen
#define APPROXSIM_K_gen(op) APPROXSIM_SIZES(op, gen, ProdGeneric)
#else
#define APPROXSIM_K_gen(op)
#endif

#define APPROXSIM_KERNELS(op) \
  APPROXSIM_K_fp32(op) APPROXSIM_K_s16(op) APPROXSIM_K_s32(op) APPROXSIM_K_g32(op) APPROXSIM_K_gen(op)

#endif /* APPROXSIM_TILE_CUH_ */
