/*
 * direct_cpu.h: the CPU entry point of a direct multiplier's kernels (direct_loops.h).
 *
 * Included at the end of the translation unit approxsim.direct generates (the model file, then
 * this header, with APPROXSIM_DIRECT_FN defined to the model function), compiled in the model's
 * own language.  approxsim's C++ extension spreads the items of an operation over its thread
 * pool (approxsim._cpu.run_direct) and calls approxsim_direct_chunk for each chunk: items are
 * whole outputs (rows, pixels, filter taps), so results do not depend on the thread count.
 */
#ifndef APPROXSIM_DIRECT_CPU_H_
#define APPROXSIM_DIRECT_CPU_H_

#include "direct_loops.h"

#ifdef __cplusplus
#include <exception>
#include <string.h>
#endif

#define APPROXSIM_DIRECT_ABI 2
#if defined(__GNUC__) || defined(__clang__)
#define APPROXSIM_DC_EXPORT __attribute__((visibility("default"))) /* the TU is built with hidden symbols */
#else
#define APPROXSIM_DC_EXPORT
#endif
#define APPROXSIM_DC_TILE 256

enum { APPROXSIM_DC_MULTIPLY = 0, APPROXSIM_DC_MATMUL = 1, APPROXSIM_DC_CONV_FWD = 2, APPROXSIM_DC_CONV_DGRAD = 3,
       APPROXSIM_DC_CONV_WGRAD = 4 };

static void approxsim_dc_run(int op, const void* args, approxsim_dl_i64 begin, approxsim_dl_i64 end) {
  approxsim_dl_out acc[APPROXSIM_DC_TILE];
  approxsim_dl_i64 item, j0, j, grp;
  if (op == APPROXSIM_DC_MULTIPLY) {
    const approxsim_dl_multiply_args* p = (const approxsim_dl_multiply_args*)args;
    for (item = begin; item < end; ++item) p->out[item] = approxsim_dl_model(p->a[item], p->b[item]);
  } else if (op == APPROXSIM_DC_MATMUL) {
    const approxsim_dl_matmul_args* p = (const approxsim_dl_matmul_args*)args;
    for (item = begin; item < end; ++item)
      for (j0 = 0; j0 < p->n; j0 += APPROXSIM_DC_TILE) {
        const approxsim_dl_i64 len = p->n - j0 < APPROXSIM_DC_TILE ? p->n - j0 : APPROXSIM_DC_TILE;
        approxsim_dl_matmul(p, item, j0, len, acc);
        for (j = 0; j < len; ++j) p->c[item * p->n + j0 + j] = acc[j];
      }
  } else {
    const approxsim_dl_conv_args* p = (const approxsim_dl_conv_args*)args;
    const approxsim_geometry* g = &p->g;
    const approxsim_dl_i64 cig = g->c / g->groups, cog = g->cout / g->groups;
    for (item = begin; item < end; ++item) {
      for (grp = 0; grp < g->groups; ++grp) {
        const approxsim_dl_i64 width = op == APPROXSIM_DC_CONV_DGRAD ? cig : cog;
        if (op == APPROXSIM_DC_CONV_WGRAD && grp != (item % g->c) / cig) continue; /* c's own group only */
        for (j0 = 0; j0 < width; j0 += APPROXSIM_DC_TILE) {
          const approxsim_dl_i64 len = width - j0 < APPROXSIM_DC_TILE ? width - j0 : APPROXSIM_DC_TILE;
          approxsim_dl_out* dst;
          if (op == APPROXSIM_DC_CONV_FWD) {
            approxsim_dl_conv_fwd(p, item, grp * cog + j0, len, acc);
            dst = p->out + item * g->cout + grp * cog + j0;
          } else if (op == APPROXSIM_DC_CONV_DGRAD) {
            approxsim_dl_conv_dgrad(p, item, grp * cig + j0, len, acc);
            dst = p->out + item * g->c + grp * cig + j0;
          } else {
            approxsim_dl_conv_wgrad(p, item, grp * cog + j0, len, acc);
            dst = approxsim_dl_wgrad_out(p, item, grp * cog + j0);
          }
          for (j = 0; j < len; ++j) dst[j] = acc[j];
        }
      }
    }
  }
}

#ifdef __cplusplus
static char approxsim_dc_error[512];
extern "C" {
#endif

APPROXSIM_DC_EXPORT int approxsim_direct_abi(void) { return APPROXSIM_DIRECT_ABI; }

/* Items [begin, end) of operation `op` (args: the operation's struct).  Returns 0, 1 when the model
   threw a C++ exception (approxsim_direct_error() says what), or -1 for an unknown operation. */
APPROXSIM_DC_EXPORT int approxsim_direct_chunk(int op, const void* args, approxsim_dl_i64 begin, approxsim_dl_i64 end) {
  if (op < APPROXSIM_DC_MULTIPLY || op > APPROXSIM_DC_CONV_WGRAD) return -1;
#ifdef __cplusplus
  try {
    approxsim_dc_run(op, args, begin, end);
  } catch (const std::exception& e) {
    strncpy(approxsim_dc_error, e.what(), sizeof approxsim_dc_error - 1);
    return 1;
  } catch (...) {
    strncpy(approxsim_dc_error, "an exception that is not a std::exception", sizeof approxsim_dc_error - 1);
    return 1;
  }
#else
  approxsim_dc_run(op, args, begin, end);
#endif
  return 0;
}

APPROXSIM_DC_EXPORT const char* approxsim_direct_error(void) {
#ifdef __cplusplus
  return approxsim_dc_error;
#else
  return "";
#endif
}

#ifdef __cplusplus
}
#endif

#endif /* APPROXSIM_DIRECT_CPU_H_ */
