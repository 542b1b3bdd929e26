// cpu_table.cpp: a multiplier table in every form the CPU kernels use.
#include "cpu_table.h"

#include <cstdlib>
#include <cstring>
#include <new>
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace approxsim {


void HugeFloats::Free::operator()(float* p) const { std::free(p); }

void HugeFloats::assign(const float* src, size_t n, size_t pad) {
  constexpr size_t kHuge = size_t(2) << 20;
  const size_t bytes = ((n + pad) * sizeof(float) + kHuge - 1) / kHuge * kHuge;
  float* p = static_cast<float*>(std::aligned_alloc(kHuge, bytes));
  if (p == nullptr) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  if (bytes >= kHuge) madvise(p, bytes, MADV_HUGEPAGE);  // a hint: failure is harmless
#endif
  std::memcpy(p, src, n * sizeof(float));
  std::memset(p + n, 0, bytes - n * sizeof(float));
  p_.reset(p);
}

struct Table::Transposed {
  std::once_flag once;
  std::unique_ptr<Table> table;
};

const Table& Table::transposed() const {
  if (m == 0) return *this;
  std::call_once(tr->once, [this] {
    const size_t side = size_t(1) << m;
    std::vector<float> t(side * side);
    const float* src = f32.data();
    for (size_t i = 0; i < side; ++i)
      for (size_t j = 0; j < side; ++j) t[j * side + i] = src[i * side + j];
    tr->table.reset(new Table(make_table(t.data(), m)));
    if (lin.valid) {  // the same lines, rows and columns swapped
      set_linear_sum(*tr->table, lin.v.data(), lin.u.data(), lin.pieces, lin.theta, lin.alpha, lin.beta);
    }
  });
  return *tr->table;
}

// The largest s with rows i and i >> s << s of the 2^m x 2^m table t bit-identical for every i.
static int equal_row_groups(const float* t, int m) {
  const size_t side = size_t(1) << m;
  int s = 0;
  while (s < m) {
    const size_t group = size_t(2) << s;  // try groups twice as large
    bool equal = true;
    for (size_t i = 0; i < side && equal; ++i)
      equal = std::memcmp(t + i * side, t + (i & ~(group - 1)) * side, side * sizeof(float)) == 0;
    if (!equal) break;
    ++s;
  }
  return s;
}

Table make_table(const float* t, int m) {
  Table out;
  out.m = m;
  out.tr = std::make_shared<Table::Transposed>();
  if (m == 0) return out;
  const size_t n = size_t(1) << (2 * m);
  out.f32.assign(t, n, 64);  // vector loads of a short row may run past the end
  out.split.resize(n);
  out.bf16.assign(n + 128, 0);
  out.bf16_exact = true;
  out.emin = 1000;
  out.emax = -1000;
  out.all_normal = true;
  for (size_t k = 0; k < n; ++k) {
    const uint32_t e = (approxsim_f2u(t[k]) >> 23) & 0xFFu;
    if (e == 0 || e == 0xFF) out.all_normal = false;
    out.split[k] = approxsim_split_entry(t[k]);
    uint32_t u = approxsim_f2u(t[k]);
    if ((u & 0xFFFFu) != 0) out.bf16_exact = false;
    out.bf16[k] = static_cast<uint16_t>(u >> 16);
    if ((u & 0x7FFFFFFFu) != 0) {
      out.any_nonzero = true;
      int e = out.split[k].exp;
      if (e < out.emin) out.emin = e;
      if (e > out.emax) out.emax = e;
    }
  }
  if (m <= kMaxExpandedBits) {
    const size_t side = size_t(1) << m;
    out.prow = m - equal_row_groups(t, m);
    const size_t rows = size_t(1) << out.prow, group = side / rows;
    std::vector<float> cols(rows * side);
    for (size_t c = 0; c < rows; ++c)
      for (size_t j = 0; j < side; ++j) cols[j * rows + c] = t[c * group * side + j];
    out.cols.assign(cols.data(), cols.size(), 64);
    if (out.prow >= 4 && out.bf16_exact && out.all_normal) {  // the words build transposes 16 rows at once
      out.cols16.resize(cols.size());
      for (size_t q = 0; q < cols.size(); ++q) out.cols16[q] = static_cast<uint16_t>(approxsim_f2u(cols[q]) >> 16);
    }
  }
  if (m <= 7 && out.bf16_exact) {
    const size_t side = size_t(1) << m;
    out.planes.assign(side * 256 + 256, 0);
    for (size_t i = 0; i < side; ++i)
      for (size_t j = 0; j < side; ++j) {
        const uint16_t v = out.bf16[i * side + j];
        out.planes[i * 256 + j] = static_cast<uint8_t>(v & 0xFF);
        out.planes[i * 256 + 128 + j] = static_cast<uint8_t>(v >> 8);
      }
  }
  return out;
}


// The s with classes[i] = i >> s for every i, or -1.
static int shift_of(const std::vector<float>& classes, int m) {
  for (int s = 0; s <= m; ++s) {
    bool all = true;
    for (size_t i = 0; i < classes.size() && all; ++i) all = classes[i] == static_cast<float>(i >> s);
    if (all) return s;
  }
  return -1;
}

void set_linear_sum(Table& t, const float* u, const float* v, int pieces, const float* theta, const float* alpha,
                    const float* beta) {
  if (t.m == 0 || pieces < 1 || pieces > LinearSum::kMaxPieces) return;
  for (int p = 2; p < pieces; ++p)  // the kernels count the thresholds s reaches: they must ascend
    if (!(theta[p] > theta[p - 1])) return;
  const size_t side = size_t(1) << t.m;
  LinearSum& lin = t.lin;
  lin.u.assign(u, u + side);
  lin.v.assign(v, v + side);
  lin.pieces = pieces;
  for (int p = 0; p < pieces; ++p) {
    lin.theta[p] = p ? theta[p] : 0.0f;
    lin.alpha[p] = alpha[p];
    lin.beta[p] = beta[p];
  }
  lin.ushift = shift_of(lin.u, t.m);
  lin.vshift = shift_of(lin.v, t.m);
  lin.valid = true;
}

}  // namespace approxsim
