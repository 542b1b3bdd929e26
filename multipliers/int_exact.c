/*
 * Exact integer multipliers: the accurate baselines for the approximate integer designs.
 *
 * The prototypes follow EvoApproxLib's conventions, so the width and signedness are read
 * from them.  4-bit operands have no C type and use the uint64_t form: the arguments are the
 * operands' 4-bit patterns (0..15) and the result is the product's bit pattern, of which the
 * low 8 bits count (for a signed circuit they are sign-extended by the caller).
 */
#include <stdint.h>

/* Exact signed 8 x 8 -> 16-bit product. */
int16_t int8(int8_t a, int8_t b) {
  return (int16_t)((int32_t)a * (int32_t)b);
}

/* Exact unsigned 8 x 8 -> 16-bit product. */
uint16_t uint8(uint8_t a, uint8_t b) {
  return (uint16_t)((uint32_t)a * (uint32_t)b);
}

/* Exact signed 16 x 16 -> 32-bit product (computed in 64 bits: -32768 * -32768 = 2^30 fits
 * int32_t, but the int32 multiply must not overflow on any operand pair). */
int32_t int16(int16_t a, int16_t b) {
  return (int32_t)((int64_t)a * (int64_t)b);
}

/* Exact signed 4 x 4 -> 8-bit product.  a and b hold 4-bit two's-complement patterns; the
 * product's 8-bit two's-complement pattern is returned in the low 8 bits. */
uint64_t int4(const uint64_t a, const uint64_t b) {
  int64_t x = (int64_t)(a & 0xFu);
  int64_t y = (int64_t)(b & 0xFu);
  if (x >= 8) x -= 16;
  if (y >= 8) y -= 16;
  return (uint64_t)(x * y) & 0xFFu;
}

/* Exact unsigned 4 x 4 -> 8-bit product of the 4-bit patterns a and b. */
uint64_t uint4(const uint64_t a, const uint64_t b) {
  return (a & 0xFu) * (b & 0xFu);
}
