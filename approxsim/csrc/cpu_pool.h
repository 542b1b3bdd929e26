// cpu_pool.h: a small persistent std::thread pool for the CPU kernels.
//
// parallel_for(n, threads, fn) runs fn(0..n-1) on up to `threads` threads (the caller is one
// of them) and returns when all are done. One pool per process serves the GEMM driver and the
// direct multipliers' kernels (approxsim._cpu.run_direct). num_threads() is the usual count:
// the CPUs this process may use, limited by $APPROXSIM_NUM_THREADS (read at every call).
#ifndef APPROXSIM_CPU_POOL_H_
#define APPROXSIM_CPU_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#endif
#include <sched.h>
#include <sys/types.h>
#include <unistd.h>

namespace approxsim {

// IEEE arithmetic for the duration of a task: subnormals neither flushed to zero (FTZ) nor read as
// zero (DAZ). TensorFlow turns both on in its own threads, which call the kernels (and whose mode
// new worker threads would inherit); the specification needs them off.
class IeeeFloatScope {
 public:
#if defined(__SSE__) || defined(__x86_64__)
  IeeeFloatScope() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ & ~kFlushBits); }
  ~IeeeFloatScope() { _mm_setcsr(saved_); }

 private:
  static constexpr unsigned kFlushBits = (1u << 15) | (1u << 6);  // FTZ, DAZ
  unsigned saved_;
#endif
};

// The CPUs this process may run on (its affinity mask), limited by $APPROXSIM_NUM_THREADS when it
// holds a positive integer (the Python side rejects other values before any kernel runs).
inline int num_threads() {
  int hw = static_cast<int>(std::thread::hardware_concurrency());
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) hw = CPU_COUNT(&set);
#endif
  if (hw < 1) hw = 1;
  const char* env = std::getenv("APPROXSIM_NUM_THREADS");
  if (env != nullptr && *env != '\0') {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end != env && v >= 1) return static_cast<int>(v < 256 ? v : 256);
  }
  return hw;
}

class ThreadPool {
 public:
  // The pool of this process. A child made by fork() has none of its parent's workers, so it
  // gets a fresh pool (the parent's is left alone: its mutexes may be in any state).
  static ThreadPool& instance() {
    static std::mutex guard;
    static ThreadPool* pool = nullptr;  // never destroyed: workers may outlive exit
    static pid_t owner = 0;
    std::lock_guard<std::mutex> lk(guard);
    if (pool == nullptr || owner != getpid()) {
      pool = new ThreadPool();
      owner = getpid();
    }
    return *pool;
  }

  // Runs fn(task) for task in [0, n) on at most `threads` threads (the caller included).
  void parallel_for(int n, int threads, const std::function<void(int)>& fn) {
    if (n <= 0) return;
    if (threads > n) threads = n;
    if (threads <= 1) {
      IeeeFloatScope ieee;
      for (int t = 0; t < n; ++t) fn(t);
      return;
    }
    std::unique_lock<std::mutex> run_lock(run_mutex_);  // one parallel region at a time
    ensure_workers(threads - 1);
    {
      std::lock_guard<std::mutex> lk(mutex_);
      fn_ = &fn;
      n_tasks_ = n;
      next_.store(0);
      active_ = threads - 1;
      pending_ = threads - 1;
      error_ = nullptr;
      ++generation_;
    }
    cv_.notify_all();
    work();
    std::unique_lock<std::mutex> lk(mutex_);
    done_cv_.wait(lk, [this] { return pending_ == 0; });
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  ThreadPool() = default;

  void ensure_workers(int count) {
    while (static_cast<int>(workers_.size()) < count) {
      int id = static_cast<int>(workers_.size());
      workers_.emplace_back([this, id] { loop(id); });
      workers_.back().detach();
    }
  }

  void work() {
    IeeeFloatScope ieee;
    for (;;) {
      int t = next_.fetch_add(1);
      if (t >= n_tasks_) return;
      try {
        (*fn_)(t);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mutex_);
        if (!error_) error_ = std::current_exception();
      }
    }
  }

  void loop(int id) {
    unsigned long seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mutex_);
        cv_.wait(lk, [&] { return generation_ != seen; });
        seen = generation_;
        if (id >= active_) continue;  // not needed in this region
      }
      work();
      {
        std::lock_guard<std::mutex> lk(mutex_);
        if (--pending_ == 0) done_cv_.notify_all();
      }
    }
  }

  std::mutex run_mutex_;
  std::mutex mutex_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* fn_ = nullptr;
  int n_tasks_ = 0;
  std::atomic<int> next_{0};
  int active_ = 0;
  int pending_ = 0;
  unsigned long generation_ = 0;
  std::exception_ptr error_;
};

}  // namespace approxsim

#endif  // APPROXSIM_CPU_POOL_H_
