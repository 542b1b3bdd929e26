/*
 * Published approximate 8 x 8-bit unsigned integer multipliers, in EvoApproxLib's
 * uint16_t NAME(uint8_t, uint8_t) form.  Every result is at most 255 * 255 = 65025 (see the
 * bound stated with each design), so none saturates.
 */
#include <stdint.h>

/* Position of the leading one of x > 0 (0 for x = 1). */
static int leading_one(uint32_t x) {
  int t = 0;
  while (x >> (t + 1)) ++t;
  return t;
}

/*
 * Broken-array multiplier (BAM), HBL = 0.
 *
 * H. R. Mahdiani, A. Ahmadi, S. M. Fakhraie, C. Lucas, "Bio-Inspired Imprecise Computational
 * Blocks for Efficient VLSI Implementation of Soft-Computing Applications", IEEE Trans.
 * Circuits and Systems I: Regular Papers, 57(4):850-862, 2010.
 *
 * The carry-save array multiplier with the cells to the right of the vertical break level
 * removed: every partial-product bit a_i b_j of a column i + j < VBL is omitted, together with
 * the adder cells that would sum it.  The horizontal break level (which would also remove the
 * upper HBL rows of the array) is 0.  The remaining cells are exact full adders feeding an
 * exact final adder, and a removed cell contributes neither a sum nor a carry, so the product
 * is the exact sum of the retained partial products:
 *     P = sum over i + j >= VBL of a_i b_j 2^(i+j).
 * (Simplification: modelled at that arithmetic level, not cell by cell.)  VBL = 0 is the
 * exact multiplier; P <= a b always, so P <= 65025.
 */
static uint16_t bam8u(uint8_t a, uint8_t b, int vbl) {
  uint32_t p = 0;
  for (int j = 0; j < 8; ++j) {
    if (!((b >> j) & 1u)) continue;
    for (int i = 0; i < 8; ++i)
      if (i + j >= vbl && ((a >> i) & 1u)) p += (uint32_t)1 << (i + j);
  }
  return (uint16_t)p;
}

/* BAM with VBL = 4: product bits 0..3 of the array removed. */
uint16_t bam8u_v4(uint8_t a, uint8_t b) { return bam8u(a, b, 4); }

/* BAM with VBL = 6. */
uint16_t bam8u_v6(uint8_t a, uint8_t b) { return bam8u(a, b, 6); }

/* BAM with VBL = 8: the whole lower half of the array (columns 0..7) removed. */
uint16_t bam8u_v8(uint8_t a, uint8_t b) { return bam8u(a, b, 8); }

/*
 * DRUM-k, the Dynamic Range Unbiased Multiplier.
 *
 * S. Hashemi, R. I. Bahar, S. Reda, "DRUM: A Dynamic Range Unbiased Multiplier for Approximate
 * Applications", Proc. IEEE/ACM Int. Conf. on Computer-Aided Design (ICCAD), 2015, pp. 418-425.
 *
 * An operand with more than k significant bits (leading one at t >= k) keeps the k bits
 * t..t-k+1 starting at its leading one; the bits below are dropped and the lowest kept bit is
 * forced to 1, which makes the truncation error unbiased on average.  An operand with at most
 * k significant bits is used unchanged.  The two k-bit values are multiplied exactly and the
 * product is shifted back by the sum of the two shifts.  Each rebuilt operand is below
 * 2^(t+1) <= 256, so the result is at most 255 * 255.
 */
static uint32_t drum_operand(uint8_t x, int k, int* shift) {
  *shift = 0;
  if (x == 0) return 0;
  int t = leading_one(x);
  if (t < k) return x;
  *shift = t - k + 1;
  return ((uint32_t)x >> *shift) | 1u;
}

static uint16_t drum8u(uint8_t a, uint8_t b, int k) {
  int sa, sb;
  uint32_t ka = drum_operand(a, k, &sa);
  uint32_t kb = drum_operand(b, k, &sb);
  return (uint16_t)((ka * kb) << (sa + sb));
}

/* DRUM with k = 4. */
uint16_t drum8u_k4(uint8_t a, uint8_t b) { return drum8u(a, b, 4); }

/* DRUM with k = 6. */
uint16_t drum8u_k6(uint8_t a, uint8_t b) { return drum8u(a, b, 6); }

/*
 * Mitchell's logarithmic multiplier, integer form.
 *
 * J. N. Mitchell, "Computer Multiplication and Division Using Binary Logarithms", IRE Trans.
 * Electronic Computers, EC-11(4):512-517, 1962.
 *
 * With a = 2^ka (1 + xa), b = 2^kb (1 + xb) (ka, kb the leading-one positions), log2(1 + x)
 * is approximated by x, so the product is 2^(ka+kb) (1 + xa + xb) when xa + xb < 1 and
 * 2^(ka+kb+1) (xa + xb) otherwise; 0 when either operand is 0.
 *
 * Fixed point: the fractions are the integers fa = a - 2^ka (ka bits, xa = fa / 2^ka) and
 * fb = b - 2^kb.  Their sum is formed exactly in units of 2^-(ka+kb):
 *     s = fa 2^kb + fb 2^ka   (xa + xb = s / 2^(ka+kb)),
 * so the two cases are P = 2^(ka+kb) + s when s < 2^(ka+kb), else P = 2 s.  Both are integers,
 * so for integer operands Mitchell's value needs no rounding at all: the truncation toward
 * zero the result would get is exact (it drops nothing).  P = a b - fa fb in the first case
 * and a b - (2^ka - fa)(2^kb - fb) in the second, so 0 <= a b - P and P <= 65025; the
 * relative error lies in [-1/9, 0], -1/9 at xa = xb = 1/2 (e.g. 3 * 3 -> 8).
 */
uint16_t mitchell8u(uint8_t a, uint8_t b) {
  if (a == 0 || b == 0) return 0;
  int ka = leading_one(a), kb = leading_one(b);
  uint32_t fa = (uint32_t)a - ((uint32_t)1 << ka);
  uint32_t fb = (uint32_t)b - ((uint32_t)1 << kb);
  uint32_t one = (uint32_t)1 << (ka + kb);
  uint32_t s = (fa << kb) + (fb << ka);
  return (uint16_t)(s < one ? one + s : 2u * s);
}

/*
 * Underdesigned multiplier (UDM) built from approximate 2 x 2 blocks.
 *
 * P. Kulkarni, P. Gupta, M. D. Ercegovac, "Trading Accuracy for Power with an Underdesigned
 * Multiplier Architecture", Proc. 24th Int. Conf. on VLSI Design, 2011, pp. 346-351.
 *
 * The 2 x 2 block is exact except 3 x 3 = 7 (a 3-bit output instead of 9).  A 2m x 2m
 * multiplier is built from four m x m ones, a = aH 2^m + aL, b = bH 2^m + bL:
 *     a b ~= aH bH 2^(2m) + (aH bL + aL bH) 2^m + aL bL,
 * with exact adders; here 4 x 4 from 2 x 2 and 8 x 8 from 4 x 4.  The result never exceeds
 * the exact product, so it is at most 65025.
 */
static uint32_t udm(uint32_t a, uint32_t b, int m) {
  if (m == 2) return (a == 3u && b == 3u) ? 7u : a * b;
  int h = m / 2;
  uint32_t lo = ((uint32_t)1 << h) - 1u;
  uint32_t ah = a >> h, al = a & lo, bh = b >> h, bl = b & lo;
  return (udm(ah, bh, h) << (2 * h)) + ((udm(ah, bl, h) + udm(al, bh, h)) << h) + udm(al, bl, h);
}

/* The 8 x 8 underdesigned multiplier. */
uint16_t kulkarni8u(uint8_t a, uint8_t b) { return (uint16_t)udm(a, b, 8); }
