// cpu_depthwise.h: depthwise convolutions (groups = input channels = output channels) on linear-sum
// tables, vectorised over the channels, with no GEMM (cpu_depthwise.cpp).
//
// A depthwise convolution is one GEMM of a single column per channel: padded to the GEMM's 16-wide
// panels, 15 of every 16 lanes would be wasted. Here the lanes are 8 channels instead, and each
// lane's product is computed from the table's structure (T[i][j] = t(u[i] + v[j]), cpu_table.h) with
// u[i] = i >> ushift and v[j] = j >> vshift taken from the operands' bits, so no lane needs a lookup.
// Each product is the float-domain product of the linear kernels, exact under the same range
// check, here made once for the whole call; a call that fails it (or any table or geometry this
// path does not take) returns false, and the caller runs the GEMM driver.
#ifndef APPROXSIM_CPU_DEPTHWISE_H_
#define APPROXSIM_CPU_DEPTHWISE_H_

#include "cpu_operands.h"
#include "cpu_table.h"

namespace approxsim {

enum class DepthwiseOp { kForward, kInputGrad, kFilterGrad };

// out = op(a, b) as conv2d_forward (a = x, b = w), conv2d_input_grad (a = dy, b = w) or
// conv2d_filter_grad (a = x, b = dy) of cpu_gemm.h; false (nothing written) where it does not apply.
bool depthwise(DepthwiseOp op, const float* a, const float* b, float* out, const Geom& g, const Table& t, int threads);

}  // namespace approxsim

#endif  // APPROXSIM_CPU_DEPTHWISE_H_
