/*
 * A degenerate multiplier for testing: its table (M = 1) holds only zeros, so by
 * DESIGN.md section 1 every product of finite operands is a zero carrying the
 * XOR of the operands' signs, while NaN and infinite operands still give NaN
 * and infinities.  Every relative error is -1.
 *
 * Reference: approxsim DESIGN.md section 1 (the approximate product).
 */
#include "model_util.h"

float zeros(float a, float b) { return approxsim_finish(a, b, 0.0); }
