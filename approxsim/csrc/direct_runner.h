/*
 * direct_runner.h: spreads a direct multiplier's outputs over std::threads.
 *
 * Included by the one-line C++ file approxsim.direct generates next to the
 * model's translation unit (direct_kernels.h); both are linked into one shared
 * library that Python loads with ctypes (which releases the GIL during calls).
 * Threads take chunks of consecutive output items from an atomic counter; each
 * output is computed by one thread in a fixed order, so results are the same
 * for any number of threads.
 */
#ifndef APPROXSIM_DIRECT_RUNNER_H_
#define APPROXSIM_DIRECT_RUNNER_H_

#define APPROXSIM_DK_DECLARE_ONLY
#include "direct_kernels.h"
#undef APPROXSIM_DK_DECLARE_ONLY

#include <algorithm>
#include <atomic>
#include <exception>
#include <thread>
#include <vector>

#define APPROXSIM_DIRECT_ABI 1

namespace {

approxsim_dk_chunk_fn approxsim_op(int op) {
  switch (op) {
    case 0: return approxsim_dk_multiply;
    case 1: return approxsim_dk_matmul;
    case 2: return approxsim_dk_conv_fwd;
    case 3: return approxsim_dk_conv_dgrad;
    case 4: return approxsim_dk_conv_wgrad;
    default: return nullptr;
  }
}

}  // namespace

extern "C" int approxsim_direct_abi(void) { return APPROXSIM_DIRECT_ABI; }

/*
 * Runs operation `op` on output items [0, items) with up to `threads` threads,
 * in chunks of `grain` items.  Returns 0, or -1 for an unknown operation.
 */
extern "C" int approxsim_direct_run(int op, const approxsim_dk_args* args, approxsim_dk_i64 items,
                                    int threads, approxsim_dk_i64 grain) {
  approxsim_dk_chunk_fn fn = approxsim_op(op);
  if (fn == nullptr) return -1;
  if (items <= 0) return 0;
  if (grain < 1) grain = 1;
  const approxsim_dk_i64 chunks = (items + grain - 1) / grain;
  const int nthreads = (int)std::max<approxsim_dk_i64>(1, std::min<approxsim_dk_i64>(threads, chunks));
  std::atomic<approxsim_dk_i64> next(0);
  auto work = [&]() {
    for (;;) {
      const approxsim_dk_i64 begin = next.fetch_add(grain);
      if (begin >= items) return;
      fn(args, begin, std::min(items, begin + grain));
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(nthreads - 1);
  for (int t = 1; t < nthreads; ++t) {
    try {
      pool.emplace_back(work);
    } catch (const std::exception&) {
      break; /* no more threads to be had: the others share the work */
    }
  }
  work();
  for (auto& th : pool) th.join();
  return 0;
}

#endif /* APPROXSIM_DIRECT_RUNNER_H_ */
