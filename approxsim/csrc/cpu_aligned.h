// cpu_aligned.h: std::vector storage that starts on a cache line.
//
// The kernels read table rows of 64 to 256 bytes with full-width loads. From a buffer on malloc's
// 16-byte alignment, whose offset in its line varies from process to process, each such load can
// straddle two lines: measured (AMD Zen 5, VBMI, 2 threads), the ResNet layer's forward with mbm7 took
// 15-16 ms in some processes and 19-21 ms in others with the same binary, before the table's byte
// planes were put on cache lines.
#ifndef APPROXSIM_CPU_ALIGNED_H_
#define APPROXSIM_CPU_ALIGNED_H_

#include <cstddef>
#include <new>
#include <vector>

namespace approxsim {

template <class T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::size_t kLine = 64;
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(kLine))); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t(kLine)); }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const CacheLineAllocator<U>&) const { return false; }
};

// A vector whose data() is on a cache line.
template <class T>
using LineVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace approxsim

#endif  // APPROXSIM_CPU_ALIGNED_H_
